//! Times one fuzz target on one input file (a slow unit libFuzzer reported, say):
//! `cargo run --release -p osips-fuzz --example time_input -- TARGET FILE`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(target), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: time_input TARGET FILE");
        std::process::exit(2);
    };
    let Some((_, body)) = osips_fuzz::TARGETS.iter().find(|(name, _)| name == target) else {
        eprintln!("unknown target {target}");
        std::process::exit(2);
    };
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(2);
        }
    };
    let t0 = std::time::Instant::now();
    body(&data);
    println!("{target} {file}: {:.3} s", t0.elapsed().as_secs_f64());
}
