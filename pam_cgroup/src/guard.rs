//! Our own panic boundary. pam-bindings catches panics too, but answers PAM_ABORT whatever the
//! policy; we answer what `on_error` says, log the panic, and keep Rust's default panic hook
//! from printing to the user's terminal.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use cgroup_core::config::OnError;

/// Runs `body`; if it panics, returns `on_panic(message)`. `on_error` is the policy known so
/// far (the body updates it once the config is read).
pub fn guarded<T>(
    on_error: &Cell<OnError>,
    body: impl FnOnce(&Cell<OnError>) -> T,
    on_panic: impl FnOnce(OnError, String) -> T,
) -> T {
    // PAM hosts call a module from one thread at a time; swapping the process-wide hook for the
    // duration of the call keeps a panic message out of stderr.
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(|| body(on_error)));
    panic::set_hook(previous_hook);
    match result {
        Ok(value) => value,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            // Dropping a panic payload can itself panic; never let that unwind.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(payload)));
            on_panic(on_error.get(), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_follows_the_policy_known_at_the_time() {
        let policy = Cell::new(OnError::Open);
        let got = guarded(
            &policy,
            |p| {
                p.set(OnError::Closed);
                panic!("boom")
            },
            |on_error, msg| (on_error, msg),
        );
        assert_eq!(got, (OnError::Closed, "boom".to_string()));
    }

    #[test]
    fn no_panic_passes_through() {
        let policy = Cell::new(OnError::Open);
        assert_eq!(guarded(&policy, |_| 7, |_, _| 0), 7);
    }
}
