//! Output: workers send [`event::Event`]s over a channel to one printer
//! thread, which writes human lines (a live view of the current task on a
//! terminal, plain lines otherwise) or one JSON object per line
//! (`--output jsonl`). `--step` questions travel the same channel, so they
//! are asked after everything before them is printed.

pub mod event;
pub mod human;
pub mod jsonl;
pub mod live;
pub mod recap;
pub mod step;

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::cli::OutputFormat;
pub use event::{Event, HostResult, Status, TaskProfile};
pub use recap::{HostStats, Recap};

/// Where workers send events. Cloneable; sending never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    /// The live view's board (human output on a terminal): it sees every
    /// event as it is sent, in the run's order.
    live: Option<Arc<live::Board>>,
}

impl EventSink {
    pub fn send(&self, event: Event) {
        if let Some(board) = &self.live {
            board.observe(&event);
        }
        // The printer only goes away after the run; a closed channel means
        // the process is shutting down and there is nobody left to tell.
        let _ = self.tx.send(event);
    }

    /// A sink whose events are collected in memory (tests).
    pub fn collecting() -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (EventSink { tx, live: None }, rx)
    }

    /// A sink in front of this one, for a relay that forwards every event
    /// here (the recorder). The live board moves to the new sink, so that
    /// it sees each event once, when the run sends it.
    pub fn relay(&mut self) -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        let live = self.live.take();
        (EventSink { tx, live }, rx)
    }

    /// Host `host` began the current task (for the live view).
    pub fn host_started(&self, host: &str) {
        if let Some(board) = &self.live {
            board.host_started(host);
        }
    }

    /// Host `host` ended the current task (for the live view; a loop's
    /// items say nothing of the end).
    pub fn host_finished(&self, host: &str, status: Status) {
        if let Some(board) = &self.live {
            board.host_finished(host, status);
        }
    }

    /// `--step`: have the printer ask `prompt` once everything sent
    /// before is printed, and wait for the answer.
    pub fn ask_step(&self, prompt: String) -> step::Answer {
        let (question, answer) = step::Question::new(prompt);
        self.send(Event::Step(question));
        answer.recv().unwrap_or(step::Answer::No)
    }
}

/// Start the printer thread. Drop every `EventSink` clone, then join the
/// handle to flush the output.
pub fn start_printer(format: OutputFormat, verbosity: u8) -> (EventSink, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Event>();
    let live = (format == OutputFormat::Human && live::wanted()).then(Arc::<live::Board>::default);
    let board = live.clone();
    let handle = std::thread::spawn(move || match format {
        OutputFormat::Human => human::HumanPrinter::new(verbosity, board).run(rx),
        OutputFormat::Jsonl => jsonl::run(rx),
    });
    (EventSink { tx, live }, handle)
}
