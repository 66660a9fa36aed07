//! The one integration-test binary: CLI tests through the built `herd`.

mod support;
