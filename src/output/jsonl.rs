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
        let mut out = stdout.lock();
        if let Ok(line) = serde_json::to_string(&event) {
            // Masked once more as text: a secret JSON-escaped by the
            // serializer is marked in that form too.
            let line = secrets.redact(&line);
            // A closed stdout (e.g. `| head`) must not kill the run.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}
