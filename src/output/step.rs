//! `--step`: before each task the run asks on the terminal, as
//! ansible-playbook does, `Perform task: TASK: NAME (N)o/(y)es/(c)ontinue: `.
//! The question travels to the printer as an [`Event::Step`](super::Event)
//! so that it is asked after everything the run sent before it has been
//! printed (and the live line cleared); the printer asks and sends the
//! answer back. The prompt goes to stderr and the answer is read from
//! stdin, which must be a terminal (`herd run --step` checks before the
//! run starts, so a job without one fails at once instead of waiting).

use std::io::Write;
use std::sync::mpsc;

/// What the person at the terminal said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Skip the task (also what an empty answer, end of input or an
    /// interrupt means).
    No,
    /// Run it, and ask again before the next one.
    Yes,
    /// Run it and every following task of the play without asking.
    Continue,
}

/// `y`/`yes` runs, `c`/`continue` runs and stops asking, anything else
/// skips, in any case: ansible-playbook's reading.
pub fn parse(answer: &str) -> Answer {
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        "c" | "continue" => Answer::Continue,
        _ => Answer::No,
    }
}

/// One question, on its way to the printer.
#[derive(Debug, Clone)]
pub struct Question {
    /// The whole prompt, `Perform task: ... (N)o/(y)es/(c)ontinue: `.
    pub prompt: String,
    reply: mpsc::Sender<Answer>,
}

impl Question {
    /// The question and where its answer arrives. A question dropped
    /// unanswered (a printer that cannot ask) reads as [`Answer::No`].
    pub fn new(prompt: String) -> (Question, mpsc::Receiver<Answer>) {
        let (reply, rx) = mpsc::channel();
        (Question { prompt, reply }, rx)
    }

    /// Ask on the terminal (prompt on stderr, answer from stdin).
    pub fn ask(&self) -> Answer {
        let mut err = std::io::stderr();
        let _ = err.write_all(self.prompt.as_bytes());
        let _ = err.flush();
        match read_line() {
            Some(line) => parse(&line),
            None => {
                // End of input or an interrupt: leave the prompt's line.
                let _ = writeln!(err);
                Answer::No
            }
        }
    }

    /// Send the answer back to the run.
    pub fn answer(&self, answer: Answer) {
        // The run waits for it; if it is gone there is nobody to tell.
        let _ = self.reply.send(answer);
    }
}

/// One line from stdin, read a byte at a time straight from the file
/// descriptor (no buffer keeps a second typed-ahead line from the next
/// question), waiting in short polls so that SIGINT or SIGTERM ends the
/// wait. `None` at end of input, on an error, or when interrupted.
fn read_line() -> Option<String> {
    let mut bytes = Vec::new();
    loop {
        if herdsman_modules::cancel::interrupted().is_some() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, its count, a timeout in milliseconds.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
        if ready == 0 {
            continue;
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a one-byte buffer.
        let n = unsafe { libc::read(libc::STDIN_FILENO, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 if byte == b'\n' => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            1 => bytes.push(byte),
            0 => return None,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_ansible_playbook_reads_them() {
        assert_eq!(parse("y"), Answer::Yes);
        assert_eq!(parse("YES\r"), Answer::Yes);
        assert_eq!(parse(" c "), Answer::Continue);
        assert_eq!(parse("Continue"), Answer::Continue);
        for no in ["", "n", "no", "N", "q", "yep"] {
            assert_eq!(parse(no), Answer::No, "{no:?}");
        }
    }

    #[test]
    fn a_question_nobody_answers_reads_as_no() {
        let (q, rx) = Question::new("Perform task: TASK: t (N)o/(y)es/(c)ontinue: ".into());
        drop(q);
        assert_eq!(rx.recv().unwrap_or(Answer::No), Answer::No);
        let (q, rx) = Question::new(String::new());
        q.answer(Answer::Continue);
        assert_eq!(rx.recv().ok(), Some(Answer::Continue));
    }
}
