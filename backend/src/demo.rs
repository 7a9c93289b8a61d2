//! The demo-mode fault settings that outlive an engine crash: the original
//! demo's random crash during prepare, step mode's pause and its hold of
//! every protocol message, and an armed coordinator crash. The HTTP handlers set them; the engine reads them.

use std::sync::Mutex;

use shared::api::CoordinatorCrashRequest;
use shared::protocol::coordinator::DemoFaults;

#[derive(Debug, Clone, Default)]
struct State {
    prepare_crash_probability: f64,
    phase_pause_ms: u64,
    hold_messages: bool,
    coordinator_crash: Option<CoordinatorCrashRequest>,
}

#[derive(Debug, Default)]
pub struct DemoSettings {
    state: Mutex<State>,
}

impl DemoSettings {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The faults the coordinator machine itself acts on.
    pub fn demo_faults(&self) -> DemoFaults {
        let s = self.state();
        DemoFaults {
            crash_at: s.coordinator_crash.as_ref().map(|c| c.at),
            phase_pause_us: s.phase_pause_ms.saturating_mul(1000),
        }
    }

    pub fn prepare_crash_probability(&self) -> f64 {
        self.state().prepare_crash_probability
    }

    pub fn phase_pause_ms(&self) -> u64 {
        self.state().phase_pause_ms
    }

    /// Whether the engine holds every protocol message (step mode's hold).
    pub fn hold_messages(&self) -> bool {
        self.state().hold_messages
    }

    pub fn set_hold_messages(&self, hold: bool) {
        self.state().hold_messages = hold;
    }

    /// The armed coordinator crash, if any.
    pub fn coordinator_crash(&self) -> Option<CoordinatorCrashRequest> {
        self.state().coordinator_crash.clone()
    }

    pub fn update(&self, probability: Option<f64>, phase_pause_ms: Option<u64>) {
        let mut s = self.state();
        if let Some(p) = probability {
            s.prepare_crash_probability = p;
        }
        if let Some(ms) = phase_pause_ms {
            s.phase_pause_ms = ms;
        }
    }

    pub fn arm_coordinator_crash(&self, request: CoordinatorCrashRequest) {
        self.state().coordinator_crash = Some(request);
    }

    /// Disarms a crash that has not fired yet, or takes the one that just
    /// fired (to know how long to stay down); `None` if none was armed.
    pub fn take_coordinator_crash(&self) -> Option<CoordinatorCrashRequest> {
        self.state().coordinator_crash.take()
    }
}
