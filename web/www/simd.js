// Which build this engine can run: relaxed SIMD (i8x16.relaxed_swizzle validates) or simd128.
const RELAXED = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 15, 1, 13, 0, 65, 0, 253, 15, 65, 0, 253, 15, 253, 128, 2, 11]);
const SIMD128 = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

const leb = (n) => {
  const out = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    out.push(n ? low | 0x80 : low);
  } while (n);
  return out;
};
const simd = (op) => [0xfd, ...leb(op)];
const [DOT_I7, DOT_I16, ADD_I32, ADD_I8, SPLAT_I8, LANE_I32] = [0x113, 186, 174, 110, 15, 27];

// A function (n: i32) -> i32 running n iterations of `step(acc, b)` on 4 independent v128
// accumulators (locals 6..9) with operands a (local 1, changed every iteration so nothing can be
// hoisted out of the loop) and b1..b4 (locals 2..5, one per accumulator, so nothing is shared).
function probeBody(step) {
  const code = [
    1, 9, 0x7b,
    0x20, 0, ...simd(SPLAT_I8), 0x21, 1,
    ...[1, 2, 3, 4].flatMap((k) => [0x20, 0, 0x41, k, 0x6a, ...simd(SPLAT_I8), 0x21, 1 + k]),
    0x03, 0x40,
    ...[1, 2, 3, 4].flatMap((k) => step(5 + k, 1 + k)),
    0x20, 1, 0x20, 2, ...simd(ADD_I8), 0x21, 1,
    0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0,
    0x0b,
    0x20, 6, 0x20, 7, ...simd(ADD_I32), 0x20, 8, ...simd(ADD_I32), 0x20, 9, ...simd(ADD_I32),
    ...simd(LANE_I32), 0,
    0x0b,
  ];
  return [...leb(code.length), ...code];
}

// Exports `r` and `i`: 32 u8·s8 products per iteration, `r` the way the relaxed kernel does them
// (four relaxed dots: two per 16 products, for the activations' low 7 bits and top bit), `i` the
// simd128 way (four i16 dots and adds).
const PROBE = (() => {
  const relaxed = probeBody((acc, b) => [0x20, 1, 0x20, b, 0x20, acc, ...simd(DOT_I7), 0x21, acc]);
  const i16 = probeBody((acc, b) => [0x20, 1, 0x20, b, ...simd(DOT_I16), 0x20, acc, ...simd(ADD_I32), 0x21, acc]);
  const code = [2, ...relaxed, ...i16];
  return new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0,
    1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f,
    3, 3, 2, 0, 0,
    7, 9, 2, 1, 114, 0, 0, 1, 105, 0, 1,
    10, ...leb(code.length), ...code,
  ]);
})();

/** Best-of-5 milliseconds of the relaxed and simd128 product loops on this engine and CPU. */
// 10^6 iterations take ~1-3 ms per call: well above browsers' coarsened timers (0.1 ms).
export function probeRelaxed(iterations = 1_000_000) {
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(PROBE));
  const time = (f) => {
    for (let k = 0; k < 3; k++) f(20_000); // let the engine tier the function up
    let best = Infinity;
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      f(iterations);
      best = Math.min(best, performance.now() - t);
    }
    return best;
  };
  return { relaxedMs: time(exports.r), simd128Ms: time(exports.i) };
}

/**
 * The build to load and why: 'relaxed' when relaxed SIMD validates and its dot is faster here
 * (engines on x86 CPUs without VNNI lower it to two multiplies, making the relaxed build ~2x
 * slower than simd128), else 'simd128'; level null when there is no WebAssembly SIMD at all.
 */
export function chooseSimd() {
  if (choice === undefined) {
    if (WebAssembly.validate(RELAXED)) {
      const probe = probeRelaxed();
      choice = { level: probe.relaxedMs < 0.9 * probe.simd128Ms ? 'relaxed' : 'simd128', ...probe };
    } else {
      choice = { level: WebAssembly.validate(SIMD128) ? 'simd128' : null };
    }
  }
  return choice;
}
let choice;

/** Whether this engine validates the `level` build ('relaxed' or 'simd128'), without probing. */
export function supports(level) {
  return WebAssembly.validate(level === 'relaxed' ? RELAXED : SIMD128);
}

/** 'relaxed', 'simd128', or null when the engine has no WebAssembly SIMD at all. */
export function simdLevel() {
  return chooseSimd().level;
}
