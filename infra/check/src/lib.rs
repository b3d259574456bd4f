//! The deploy, checked before it happens. `infra/template.yaml` (AWS SAM) is evaluated offline
//! for every region of `infra/samconfig.toml`, and the rules that keep production safe are
//! checked on the result: the connection budget (with the very arithmetic the functions run at
//! start-up, [`db::DbConfig`]), attempts against the queue's `maxReceiveCount`, the timeout
//! ordering, least-privilege roles, secrets only as references, one alarm per scaling trigger
//! of the seed plan, and a gradual rollout. `make test` runs these rules on the real files and
//! on broken copies; `make deploy` refuses to start when one fails, and `make deploy DRY_RUN=1`
//! prints the tables computed here.

pub mod cfn;
pub mod deploy;
pub mod render;
pub mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use cfn::{CfnError, Evaluated, Pseudo, Template};
pub use deploy::{Database, DeployError, RegionEnv};
pub use rules::{Region, Report};

/// Why a plan could not be built at all (before any rule is checked).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("{path}: {source}")]
    Template {
        path: String,
        #[source]
        source: CfnError,
    },
    #[error("environment {env}: {source}")]
    Region {
        env: String,
        #[source]
        source: CfnError,
    },
}

/// The files a deploy is made of.
#[derive(Debug, Clone)]
pub struct Files {
    pub template: PathBuf,
    pub samconfig: PathBuf,
    pub database: PathBuf,
}

impl Files {
    /// `infra/template.yaml`, `infra/samconfig.toml`, `infra/database.toml` under `root`.
    pub fn in_repo(root: &Path) -> Self {
        let infra = root.join("infra");
        Self {
            template: infra.join("template.yaml"),
            samconfig: infra.join("samconfig.toml"),
            database: infra.join("database.toml"),
        }
    }
}

/// Every region's evaluated template, and the database they share.
#[derive(Debug, Clone)]
pub struct Plan {
    pub database: Database,
    pub template: Template,
    pub regions: Vec<Region>,
}

impl Plan {
    pub fn load(files: &Files) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(&files.template)
            .map_err(|source| DeployError::Read { path: files.template.display().to_string(), source })?;
        let template = Template::parse(&text)
            .map_err(|source| PlanError::Template { path: files.template.display().to_string(), source })?;
        Self::build(template, deploy::load_samconfig(&files.samconfig)?, Database::load(&files.database)?)
    }

    /// Evaluates `template` for every environment.
    pub fn build(template: Template, envs: Vec<RegionEnv>, database: Database) -> Result<Self, PlanError> {
        let mut regions = Vec::with_capacity(envs.len());
        for env in envs {
            let pseudo = Pseudo { region: env.region.clone(), stack_name: env.stack_name.clone() };
            let evaluated = template
                .evaluate(&env.overrides, &pseudo)
                .map_err(|source| PlanError::Region { env: env.name.clone(), source })?;
            regions.push(Region { env, template: evaluated });
        }
        Ok(Self { database, template, regions })
    }

    pub fn check(&self) -> Report {
        rules::check(&self.database, &self.regions)
    }

    /// Parameter values that are still placeholders (all-zero ids, `<…>`, `example`): fine for
    /// a dry run, refused by a real deploy.
    pub fn placeholders(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for r in &self.regions {
            for (k, v) in &r.env.overrides {
                let zeros = v.len() >= 8 && v.chars().all(|c| c == '0');
                if zeros || v.contains('<') || v.contains("example") || v.contains("REPLACE") {
                    out.push((r.env.name.clone(), k.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// `Key=Value` overrides of one environment, for `sam deploy --parameter-overrides`.
    pub fn overrides(&self, env: &str) -> Option<&BTreeMap<String, String>> {
        self.regions.iter().find(|r| r.env.name == env).map(|r| &r.env.overrides)
    }
}
