//! `deploy-plan`: what `make deploy` would create, and whether its rules hold.
//!
//!     deploy-plan [--root DIR] [--set Key=Value]... [--strict] [report|envs|overrides ENV|param ENV NAME]
//!
//! `report` (the default) prints the parameters per region, the connection-budget table, the
//! alarms, the resources and the rule findings; it exits 1 when a rule fails. `--strict` (a
//! real deploy) also fails on placeholder values. `envs` prints one line per region
//! (`config-env aws-region stack-name`); `overrides ENV` prints that region's parameter
//! overrides as `Key=Value` lines, `--set` values included, for `sam deploy`; `param ENV NAME`
//! prints one parameter's value as that region resolves it (override, else the default).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use infra::{Files, Plan, render};

struct Args {
    root: PathBuf,
    sets: BTreeMap<String, String>,
    strict: bool,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { root: PathBuf::from("."), sets: BTreeMap::new(), strict: false, command: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--root" => args.root = it.next().ok_or("--root needs a directory")?.into(),
            "--set" => {
                let kv = it.next().ok_or("--set needs Key=Value")?;
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("--set {kv}: expected Key=Value"))?;
                args.sets.insert(k.to_owned(), v.to_owned());
            }
            "--strict" => args.strict = true,
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => args.command.push(arg),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("deploy-plan: {e}");
            }
            eprintln!(
                "usage: deploy-plan [--root DIR] [--set Key=Value]... [--strict] [report|envs|overrides ENV|param ENV NAME]"
            );
            return ExitCode::from(2);
        }
    };
    let files = Files::in_repo(&args.root);
    let loaded = (|| {
        let text = std::fs::read_to_string(&files.template)
            .map_err(|e| format!("cannot read {}: {e}", files.template.display()))?;
        let template = infra::Template::parse(&text).map_err(|e| format!("{}: {e}", files.template.display()))?;
        let mut envs = infra::deploy::load_samconfig(&files.samconfig).map_err(|e| e.to_string())?;
        for env in &mut envs {
            env.overrides.extend(args.sets.clone());
        }
        let database = infra::Database::load(&files.database).map_err(|e| e.to_string())?;
        Plan::build(template, envs, database).map_err(|e| e.to_string())
    })();
    let plan = match loaded {
        Ok(p) => p,
        Err(e) => {
            eprintln!("deploy-plan: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["report"] => report(&plan, args.strict),
        ["envs"] => {
            let lines: Vec<String> =
                plan.regions.iter().map(|r| format!("{} {} {}", r.env.name, r.env.region, r.env.stack_name)).collect();
            out(&lines)
        }
        ["param", env, name] => {
            match plan.regions.iter().find(|r| r.env.name == *env).and_then(|r| r.template.param(name)) {
                Some(value) => out(&[value.to_owned()]),
                None => {
                    eprintln!("deploy-plan: no environment {env} or no parameter {name}");
                    ExitCode::from(2)
                }
            }
        }
        ["overrides", env] => match plan.overrides(env) {
            Some(overrides) => out(&overrides.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()),
            None => {
                eprintln!("deploy-plan: no environment {env} in {}", files.samconfig.display());
                ExitCode::from(2)
            }
        },
        other => {
            eprintln!("deploy-plan: unknown command {other:?}");
            ExitCode::from(2)
        }
    }
}

/// Lines on stdout; a reader that stops early (`| head -1`) is not an error.
fn out(lines: &[String]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        if writeln!(stdout, "{line}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn report(plan: &Plan, strict: bool) -> ExitCode {
    let report = plan.check();
    print!("{}", render::parameters(plan));
    print!("{}", render::budget(plan, &report));
    print!("{}", render::alarms(&report));
    print!("{}", render::resources(plan));
    print!("{}", render::findings(&report));
    let placeholders = plan.placeholders();
    if !placeholders.is_empty() {
        println!("## Placeholders {}\n", if strict { "(a real deploy refuses these)" } else { "(fine for a dry run)" });
        for (env, k, v) in &placeholders {
            println!("- {env}: {k}={v}");
        }
        println!();
    }
    if !report.passed() || (strict && !placeholders.is_empty()) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
