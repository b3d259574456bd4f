//! The deploy's inputs besides the template: one SAM config environment per region
//! (`infra/samconfig.toml`) and the shared database's connection limit (`infra/database.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// A deploy input that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML for this purpose: {source}")]
    Toml {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: environment {env}: {why}")]
    Env { path: String, env: String, why: String },
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

/// One region's deploy: a SAM config environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEnv {
    /// The config environment's name (`prod-eu-west`).
    pub name: String,
    pub region: String,
    pub stack_name: String,
    pub capabilities: String,
    /// `Key=Value` parameter overrides, in file order.
    pub overrides: BTreeMap<String, String>,
}

/// The shared primary's connection limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// `max_connections` on the primary.
    pub max_connections: usize,
    /// Connections kept free for everything that is not a function.
    pub reserved: usize,
}

impl Database {
    /// What the functions of every region may hold together.
    pub fn function_budget(&self) -> usize {
        self.max_connections.saturating_sub(self.reserved)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, DeployError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            database: Database,
        }
        let file: File = toml::from_str(text).map_err(|source| DeployError::Toml { path: path.into(), source })?;
        if file.database.reserved >= file.database.max_connections {
            return Err(DeployError::Invalid {
                path: path.into(),
                why: "reserved must be smaller than max_connections".into(),
            });
        }
        Ok(file.database)
    }

    pub fn load(path: &Path) -> Result<Self, DeployError> {
        Self::parse(&read(path)?, &path.display().to_string())
    }
}

#[derive(Deserialize)]
struct DeployParameters {
    stack_name: String,
    region: String,
    capabilities: String,
    #[serde(default)]
    parameter_overrides: Overrides,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Overrides {
    List(Vec<String>),
    Line(String),
    #[default]
    None,
}

/// Reads every environment of a SAM config file that has `deploy.parameters`, in file order
/// (the order `make deploy` deploys them: list the region to try a release on first).
pub fn parse_samconfig(text: &str, path: &str) -> Result<Vec<RegionEnv>, DeployError> {
    let doc: toml::Table = toml::from_str(text).map_err(|source| DeployError::Toml { path: path.into(), source })?;
    let mut envs = Vec::new();
    for (name, table) in &doc {
        let Some(deploy) = table.get("deploy").and_then(|d| d.get("parameters")) else {
            continue;
        };
        let env_err = |why: String| DeployError::Env { path: path.into(), env: name.clone(), why };
        let params: DeployParameters =
            deploy.clone().try_into().map_err(|e: toml::de::Error| env_err(e.to_string()))?;
        let items: Vec<String> = match params.parameter_overrides {
            Overrides::List(items) => items,
            Overrides::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
            Overrides::None => Vec::new(),
        };
        let mut overrides = BTreeMap::new();
        for item in items {
            let (k, v) = item
                .split_once('=')
                .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
                .ok_or_else(|| env_err(format!("parameter override {item:?} is not Key=Value")))?;
            if overrides.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(env_err(format!("parameter {k} is set twice")));
            }
        }
        envs.push(RegionEnv {
            name: name.clone(),
            region: params.region,
            stack_name: params.stack_name,
            capabilities: params.capabilities,
            overrides,
        });
    }
    if envs.is_empty() {
        return Err(DeployError::Invalid { path: path.into(), why: "no environment has deploy.parameters".into() });
    }
    Ok(envs)
}

pub fn load_samconfig(path: &Path) -> Result<Vec<RegionEnv>, DeployError> {
    parse_samconfig(&read(path)?, &path.display().to_string())
}

fn read(path: &Path) -> Result<String, DeployError> {
    std::fs::read_to_string(path).map_err(|source| DeployError::Read { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_with_deploy_parameters_are_regions_and_overrides_are_key_value_pairs() {
        let text = r#"
version = 0.1
[default.global.parameters]
beta_features = false
[prod-us.deploy.parameters]
stack_name = "s"
region = "us-west-2"
capabilities = "CAPABILITY_NAMED_IAM"
parameter_overrides = "Stage=prod Pool=us-west"
[prod-eu.deploy.parameters]
stack_name = "s"
region = "eu-west-1"
capabilities = "CAPABILITY_NAMED_IAM"
parameter_overrides = ["Stage=prod", "Url=https://x/?a=b"]
"#;
        let envs = parse_samconfig(text, "t").unwrap();
        assert_eq!(envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["prod-us", "prod-eu"], "file order");
        assert_eq!(envs[1].overrides["Url"], "https://x/?a=b", "only the first = splits");
        assert_eq!(envs[0].overrides["Pool"], "us-west");
    }

    #[test]
    fn a_repeated_or_malformed_override_is_refused() {
        let base = "[e.deploy.parameters]\nstack_name='s'\nregion='r'\ncapabilities='c'\n";
        let twice = format!("{base}parameter_overrides=['A=1','A=2']\n");
        assert!(parse_samconfig(&twice, "t").unwrap_err().to_string().contains("set twice"));
        let bare = format!("{base}parameter_overrides=['A']\n");
        assert!(parse_samconfig(&bare, "t").unwrap_err().to_string().contains("not Key=Value"));
        assert!(parse_samconfig("version = 0.1\n", "t").is_err());
    }

    #[test]
    fn the_database_keeps_its_reserved_connections_out_of_the_functions_budget() {
        let db = Database::parse("[database]\nmax_connections = 100\nreserved = 10\n", "t").unwrap();
        assert_eq!(db.function_budget(), 90);
        assert!(Database::parse("[database]\nmax_connections = 10\nreserved = 10\n", "t").is_err());
        assert!(Database::parse("[database]\nmax_connections = 10\n", "t").is_err());
    }
}
