//! Configuration: one TOML file plus `EC2BRIDGE_*` environment overrides; unknown keys are errors.
