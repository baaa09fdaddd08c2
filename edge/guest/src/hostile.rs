//! Test-only misbehaviour, compiled in only with the `hostile` feature: a question naming one
//! of these makes the guest do what a runaway or broken guest would, so the gateway's sandbox
//! (deadline, memory cap, trap isolation) is tested through its real HTTP path.

/// Loops forever: the gateway's epoch deadline must end it.
pub const SPIN: &str = "squint-test: spin";
/// Allocates without bound: the instance's memory cap must stop it.
pub const HOG: &str = "squint-test: hog";
/// Panics (a wasm trap): the host must survive and replace the instance.
pub const TRAP: &str = "squint-test: trap";

/// Misbehaves if `question` asks for it; returns normally otherwise.
pub fn act_on(question: &str) {
    match question {
        SPIN => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        HOG => {
            let mut kept: Vec<Vec<u8>> = Vec::new();
            loop {
                kept.push(vec![1u8; 8 << 20]);
                std::hint::black_box(&kept);
            }
        }
        TRAP => panic!("squint-test: a deliberate trap"),
        _ => {}
    }
}
