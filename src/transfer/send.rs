//! Sending: placeholder until the agent's write requests land.

use super::*;

pub(crate) fn run_pass(
    _src: &SourceHost,
    _tgt: &TargetHost,
    _trees: &[Tree],
    _owners: OwnerMap,
    _opts: &SyncOptions,
    _sink: &mut dyn Sink,
) -> Result<SyncReport, Failure> {
    let _ = (
        make_target_roots,
        scan_all,
        manifest::save,
        Counters::default,
    );
    Err(Failure::check("the transfer engine is not written yet"))
}
