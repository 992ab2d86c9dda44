//! The Server-Sent Events case script: what an `sse.*` case file entry may say.

use serde::Deserialize;

use crate::case::file::Validate;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {}

impl Validate for Script {
    fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}
