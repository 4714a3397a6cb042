//! Helpers shared by the workspace-level end-to-end tests (see `e2e/`).
