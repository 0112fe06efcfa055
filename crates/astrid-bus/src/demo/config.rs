//! What a run of the demo is told to do.

use crate::DemoArgs;

/// What a run of the demo is told to do.
#[derive(Debug, Clone)]
pub(crate) struct DemoConfig {
    pub(crate) seconds: u64,
    pub(crate) capsules: usize,
    pub(crate) principals: usize,
    /// Show progress (a bar on a terminal, plain lines otherwise).
    pub(crate) progress: bool,
}

impl DemoConfig {
    pub(crate) fn from_args(args: &DemoArgs) -> Self {
        Self {
            seconds: args.seconds,
            capsules: usize::try_from(args.capsules).unwrap_or(usize::MAX),
            principals: usize::try_from(args.principals).unwrap_or(usize::MAX),
            progress: true,
        }
    }
}
