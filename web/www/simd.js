// Which build this engine can run: relaxed SIMD (i8x16.relaxed_swizzle validates) or simd128.
const RELAXED = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 15, 1, 13, 0, 65, 0, 253, 15, 65, 0, 253, 15, 253, 128, 2, 11]);
const SIMD128 = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

/** 'relaxed', 'simd128', or null when the engine has no WebAssembly SIMD at all. */
export function simdLevel() {
  if (WebAssembly.validate(RELAXED)) return 'relaxed';
  if (WebAssembly.validate(SIMD128)) return 'simd128';
  return null;
}
