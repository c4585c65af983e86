//! Ctrl-C during a load run: the first stops the schedule, a second ends the
//! wait for the calls in flight.

use tokio::sync::watch;

/// Ctrl-C presses, listened for from the start of the run.
pub(super) struct Interrupts {
    presses: watch::Receiver<u32>,
    handled: u32,
}

impl Interrupts {
    pub(super) fn listen() -> std::io::Result<Interrupts> {
        let (tx, presses) = watch::channel(0u32);
        // On unix the handler is in place before this returns, so a Ctrl-C
        // right after the first call is seen, not the default exit.
        #[cfg(unix)]
        {
            let mut signal =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    tx.send_modify(|n| *n += 1);
                }
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Interrupts {
            presses,
            handled: 0,
        })
    }

    /// Whether Ctrl-C was pressed since the last one handled; handles it.
    pub(super) fn pending(&mut self) -> bool {
        let presses = *self.presses.borrow();
        let pending = presses > self.handled;
        self.handled = presses;
        pending
    }

    /// Waits for a Ctrl-C not yet handled.
    pub(super) async fn next(&mut self) {
        loop {
            if self.pending() {
                return;
            }
            if self.presses.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
