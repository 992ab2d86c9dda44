//! Workspace-level test package: see tests/ and benches/.
