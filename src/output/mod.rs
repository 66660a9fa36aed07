//! Output: workers send [`event::Event`]s over a channel to one printer
//! thread, which writes human lines (live progress on a terminal, plain
//! lines otherwise) or one JSON object per line (`--output jsonl`).

pub mod event;
pub mod human;
pub mod jsonl;
pub mod recap;

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::cli::OutputFormat;
pub use event::{Event, HostResult, Status, TaskProfile};
pub use recap::{HostStats, Recap};

/// Where workers send events. Cloneable; sending never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
}

impl EventSink {
    pub fn send(&self, event: Event) {
        // The printer only goes away after the run; a closed channel means
        // the process is shutting down and there is nobody left to tell.
        let _ = self.tx.send(event);
    }

    /// A sink whose events are collected in memory (tests).
    pub fn collecting() -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (EventSink { tx }, rx)
    }
}

/// Start the printer thread. Drop every `EventSink` clone, then join the
/// handle to flush the output.
pub fn start_printer(format: OutputFormat, verbosity: u8) -> (EventSink, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Event>();
    let handle = std::thread::spawn(move || match format {
        OutputFormat::Human => human::HumanPrinter::new(verbosity).run(rx),
        OutputFormat::Jsonl => jsonl::run(rx),
    });
    (EventSink { tx }, handle)
}
