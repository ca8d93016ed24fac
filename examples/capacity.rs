//! The model-capacity figure's measurement over its whole slider range, on the CPU twin
//! (`cargo run --release --example capacity`): for each width and number of training points, a
//! network trained as the figure trains it, its samples' mean distance to the nearest training
//! point, beside the same for the closed form and for held-out points of the distribution.

use fm_explainer::flow::capacity;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(capacity::STEPS);
    let started = std::time::Instant::now();
    println!("mean distance to the nearest training point, / the data scale; {steps} steps");
    print!("| n | held out | closed form |");
    for w in capacity::WIDTHS {
        print!(" width {w} |");
    }
    println!();
    for n in [10, 20, 50, 100, 200, 500] {
        let r = capacity::References::new(n);
        print!("| {n} | {:.4} | {:.4} |", r.held_out, r.closed_form);
        for w in capacity::WIDTHS {
            let m = capacity::network_distance(&r, w, steps);
            print!(" {m:.4} |");
        }
        println!();
    }
    eprintln!("{:.0} s", started.elapsed().as_secs_f64());
}
