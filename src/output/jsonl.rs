//! `--output jsonl`: one JSON object per event per line, flushed as it
//! happens, for log shippers and scheduled jobs.

use std::io::Write;
use std::sync::mpsc::Receiver;

use crate::output::event::Event;

pub fn run(rx: Receiver<Event>) {
    let stdout = std::io::stdout();
    let secrets = crate::secrets::global();
    for mut event in rx {
        event.redact(secrets);
        if let Event::Step(question) = &event {
            // `--step` with JSON lines: the question on the terminal,
            // nothing on stdout.
            question.answer(question.ask());
            continue;
        }
        let mut out = stdout.lock();
        // Masked field by field, never as serialized text: a password that
        // happens to equal a key or a status word must not break the JSON.
        if let Ok(line) = serde_json::to_string(&event) {
            // A closed stdout (e.g. `| head`) must not kill the run.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}
