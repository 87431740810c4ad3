//! Helpers shared by Berth's integration tests.
