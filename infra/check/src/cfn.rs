//! Just enough CloudFormation to check a template offline: the YAML short forms (`!Ref`,
//! `!Sub`, …) and their long forms, conditions, and the intrinsic functions this project's
//! template uses, evaluated against one region's parameter values.
//!
//! The result keeps what cannot be known before deploying as visible symbols: a reference to a
//! resource becomes `<ref:Name>`, an attribute `<Name.Attr>`, and a `{{resolve:…}}` dynamic
//! reference stays as written, so a rule can tell a secret reference from a plain value.

use std::collections::BTreeMap;

use yaml_serde::{Mapping, Value};

/// A template that could not be read or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum CfnError {
    #[error("the template is not YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
    #[error("the template has no {0} section")]
    Missing(&'static str),
    #[error("parameter {0} has no value (no override and no Default)")]
    NoValue(String),
    #[error("parameter {name}={value:?} is not allowed: {why}")]
    BadParameter { name: String, value: String, why: String },
    #[error("unknown condition {0}")]
    UnknownCondition(String),
    #[error("cannot evaluate {what}: {why}")]
    Eval { what: String, why: String },
}

/// The pseudo parameters a region supplies. The account id is a placeholder: no rule may
/// depend on it.
#[derive(Debug, Clone)]
pub struct Pseudo {
    pub region: String,
    pub stack_name: String,
}

const ACCOUNT_PLACEHOLDER: &str = "123456789012";

/// A parsed template, not yet evaluated.
#[derive(Debug, Clone)]
pub struct Template {
    pub root: Mapping,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, CfnError> {
        match yaml_serde::from_str::<Value>(text)? {
            Value::Mapping(root) => Ok(Self { root }),
            _ => Err(CfnError::Missing("top-level mapping")),
        }
    }

    /// The declared parameters with their defaults.
    pub fn parameters(&self) -> Result<BTreeMap<String, ParameterSpec>, CfnError> {
        let Some(Value::Mapping(params)) = self.root.get("Parameters") else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for (name, spec) in params {
            let name = name.as_str().unwrap_or_default().to_owned();
            let field = |key: &str| spec.get(key).and_then(scalar_string);
            let allowed = match spec.get("AllowedValues") {
                Some(Value::Sequence(items)) => Some(items.iter().filter_map(scalar_string).collect()),
                _ => None,
            };
            out.insert(
                name,
                ParameterSpec {
                    kind: field("Type").unwrap_or_else(|| "String".into()),
                    default: field("Default"),
                    allowed,
                    min: spec.get("MinValue").and_then(Value::as_f64),
                    max: spec.get("MaxValue").and_then(Value::as_f64),
                },
            );
        }
        Ok(out)
    }

    /// Evaluates the template for one region: parameter values (overrides over defaults,
    /// checked against their constraints), conditions, and every resource and output whose
    /// condition holds, with intrinsic functions applied.
    pub fn evaluate(&self, overrides: &BTreeMap<String, String>, pseudo: &Pseudo) -> Result<Evaluated, CfnError> {
        let specs = self.parameters()?;
        let mut params = BTreeMap::new();
        for (name, spec) in &specs {
            let value = overrides.get(name).cloned().or_else(|| spec.default.clone());
            let value = value.ok_or_else(|| CfnError::NoValue(name.clone()))?;
            spec.check(name, &value)?;
            params.insert(name.clone(), value);
        }
        if let Some(unknown) = overrides.keys().find(|k| !specs.contains_key(*k)) {
            return Err(CfnError::BadParameter {
                name: unknown.clone(),
                value: overrides[unknown].clone(),
                why: "the template declares no such parameter".into(),
            });
        }
        let mut ctx =
            Context { params, pseudo: pseudo.clone(), conditions: BTreeMap::new(), raw_conditions: Mapping::new() };
        if let Some(Value::Mapping(conds)) = self.root.get("Conditions") {
            ctx.raw_conditions = conds.clone();
            for name in conds.keys().filter_map(Value::as_str) {
                ctx.condition(name)?;
            }
        }
        let Some(Value::Mapping(resources)) = self.root.get("Resources") else {
            return Err(CfnError::Missing("Resources"));
        };
        let mut out = BTreeMap::new();
        for (name, resource) in resources {
            let name = name.as_str().unwrap_or_default().to_owned();
            if let Some(cond) = resource.get("Condition").and_then(Value::as_str) {
                if !ctx.condition(cond)? {
                    continue;
                }
            }
            let kind = resource.get("Type").and_then(Value::as_str).unwrap_or_default().to_owned();
            let properties = match resource.get("Properties") {
                Some(props) => ctx.eval(props, &name)?.unwrap_or(Value::Null),
                None => Value::Null,
            };
            out.insert(name.clone(), Resource { name, kind, properties });
        }
        Ok(Evaluated { params: ctx.params, resources: out })
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct ParameterSpec {
    pub kind: String,
    pub default: Option<String>,
    pub allowed: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl ParameterSpec {
    fn check(&self, name: &str, value: &str) -> Result<(), CfnError> {
        let bad = |why: String| CfnError::BadParameter { name: name.into(), value: value.into(), why };
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|a| a == value) {
                return Err(bad(format!("allowed: {}", allowed.join(", "))));
            }
        }
        if self.kind == "Number" {
            let n: f64 = value.parse().map_err(|_| bad("not a number".into()))?;
            if self.min.is_some_and(|min| n < min) || self.max.is_some_and(|max| n > max) {
                return Err(bad(format!("outside {:?}..={:?}", self.min, self.max)));
            }
        }
        Ok(())
    }
}

/// One region's view of the template.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub params: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Resource>,
}

impl Evaluated {
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.values().filter(move |r| r.kind == kind)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// An evaluated resource.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    pub kind: String,
    pub properties: Value,
}

impl Resource {
    /// A property by path (`"Environment.Variables.MAX_CONCURRENCY"`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.properties, |v, key| v.get(key))
    }

    /// A scalar property as text (numbers and booleans included).
    pub fn text(&self, path: &str) -> Option<String> {
        self.get(path).and_then(scalar_string)
    }
}

/// A scalar as CloudFormation sees it: numbers and booleans are strings too.
pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The symbol a reference to a resource evaluates to.
pub fn ref_symbol(resource: &str) -> String {
    format!("<ref:{resource}>")
}

/// The symbol an attribute of a resource evaluates to.
pub fn attr_symbol(resource: &str, attr: &str) -> String {
    format!("<{resource}.{attr}>")
}

struct Context {
    params: BTreeMap<String, String>,
    pseudo: Pseudo,
    conditions: BTreeMap<String, bool>,
    raw_conditions: Mapping,
}

/// An intrinsic function call, from either the short (tagged) or the long (`Fn::X` key) form.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = if name == "Ref" || name == "Condition" { name.to_owned() } else { format!("Fn::{name}") };
            Some((name, &tagged.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_owned(), arg))
        }
        _ => None,
    }
}

impl Context {
    fn err(what: &str, why: impl Into<String>) -> CfnError {
        CfnError::Eval { what: what.into(), why: why.into() }
    }

    fn condition(&mut self, name: &str) -> Result<bool, CfnError> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        let raw = self.raw_conditions.get(name).cloned().ok_or_else(|| CfnError::UnknownCondition(name.into()))?;
        let value = self.truth(&raw, name)?;
        self.conditions.insert(name.into(), value);
        Ok(value)
    }

    fn truth(&mut self, v: &Value, what: &str) -> Result<bool, CfnError> {
        let Some((func, arg)) = intrinsic(v) else {
            return match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(Self::err(what, "a condition must be a condition function")),
            };
        };
        let args = || arg.as_sequence().cloned().ok_or_else(|| Self::err(what, format!("{func} takes a list")));
        match func.as_str() {
            "Condition" => self.condition(arg.as_str().ok_or_else(|| Self::err(what, "Condition takes a name"))?),
            "Fn::Equals" => {
                let items = args()?;
                let [a, b] = items.as_slice() else { return Err(Self::err(what, "Fn::Equals takes two values")) };
                let a = self.eval(a, what)?.as_ref().and_then(scalar_string);
                let b = self.eval(b, what)?.as_ref().and_then(scalar_string);
                Ok(a == b)
            }
            "Fn::And" => {
                let mut all = true;
                for item in args()? {
                    all &= self.truth(&item, what)?;
                }
                Ok(all)
            }
            "Fn::Or" => {
                let mut any = false;
                for item in args()? {
                    any |= self.truth(&item, what)?;
                }
                Ok(any)
            }
            "Fn::Not" => {
                let items = args()?;
                let [one] = items.as_slice() else { return Err(Self::err(what, "Fn::Not takes one condition")) };
                Ok(!self.truth(one, what)?)
            }
            other => Err(Self::err(what, format!("{other} is not a condition function"))),
        }
    }

    /// Evaluates a value; `None` means `AWS::NoValue` (the key or item disappears).
    fn eval(&mut self, v: &Value, what: &str) -> Result<Option<Value>, CfnError> {
        if let Some((func, arg)) = intrinsic(v) {
            return self.call(&func, arg, what);
        }
        Ok(Some(match v {
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(self.eval(item, what)?);
                }
                Value::Sequence(out)
            }
            Value::Mapping(map) => {
                let mut out = Mapping::new();
                for (k, item) in map {
                    if let Some(value) = self.eval(item, what)? {
                        out.insert(k.clone(), value);
                    }
                }
                Value::Mapping(out)
            }
            other => other.clone(),
        }))
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.params.get(name) {
            return Some(v.clone());
        }
        Some(match name {
            "AWS::Region" => self.pseudo.region.clone(),
            "AWS::AccountId" => ACCOUNT_PLACEHOLDER.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::StackName" => self.pseudo.stack_name.clone(),
            _ => return None,
        })
    }

    fn call(&mut self, func: &str, arg: &Value, what: &str) -> Result<Option<Value>, CfnError> {
        match func {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| Self::err(what, "Ref takes a name"))?;
                if name == "AWS::NoValue" {
                    return Ok(None);
                }
                let value = self.lookup(name).unwrap_or_else(|| ref_symbol(name));
                Ok(Some(Value::String(value)))
            }
            "Fn::GetAtt" => {
                let (res, attr) = match arg {
                    Value::String(s) => s.split_once('.').ok_or_else(|| Self::err(what, "GetAtt takes Name.Attr"))?,
                    Value::Sequence(items) if items.len() == 2 => (
                        items[0].as_str().ok_or_else(|| Self::err(what, "GetAtt name"))?,
                        items[1].as_str().ok_or_else(|| Self::err(what, "GetAtt attribute"))?,
                    ),
                    _ => return Err(Self::err(what, "GetAtt takes Name.Attr or [Name, Attr]")),
                };
                Ok(Some(Value::String(attr_symbol(res, attr))))
            }
            "Fn::Sub" => {
                let (template, vars) = match arg {
                    Value::String(s) => (s.clone(), Mapping::new()),
                    Value::Sequence(items) if items.len() == 2 => {
                        let t = items[0].as_str().ok_or_else(|| Self::err(what, "Sub template"))?.to_owned();
                        let vars = match self.eval(&items[1], what)? {
                            Some(Value::Mapping(m)) => m,
                            _ => return Err(Self::err(what, "Sub variables must be a mapping")),
                        };
                        (t, vars)
                    }
                    _ => return Err(Self::err(what, "Sub takes a string or [string, variables]")),
                };
                Ok(Some(Value::String(self.substitute(&template, &vars, what)?)))
            }
            "Fn::If" => {
                let items = arg.as_sequence().ok_or_else(|| Self::err(what, "If takes a list"))?;
                let [cond, yes, no] = items.as_slice() else {
                    return Err(Self::err(what, "If takes [condition, then, else]"));
                };
                let cond = cond.as_str().ok_or_else(|| Self::err(what, "If condition name"))?;
                if self.condition(cond)? { self.eval(yes, what) } else { self.eval(no, what) }
            }
            "Fn::Join" => {
                let items = arg.as_sequence().ok_or_else(|| Self::err(what, "Join takes a list"))?;
                let [sep, list] = items.as_slice() else { return Err(Self::err(what, "Join takes [sep, list]")) };
                let sep = sep.as_str().unwrap_or_default().to_owned();
                let list = match self.eval(list, what)? {
                    Some(Value::Sequence(list)) => list,
                    _ => return Err(Self::err(what, "Join's second argument must be a list")),
                };
                let parts: Vec<String> = list.iter().filter_map(scalar_string).collect();
                Ok(Some(Value::String(parts.join(&sep))))
            }
            other => Err(Self::err(what, format!("{other} is not supported by the offline checker"))),
        }
    }

    fn substitute(&self, template: &str, vars: &Mapping, what: &str) -> Result<String, CfnError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` is a literal `${Literal}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').ok_or_else(|| Self::err(what, "unclosed ${ in Sub"))?;
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name).and_then(scalar_string) {
                v
            } else if let Some(v) = self.lookup(name) {
                v
            } else if let Some((res, attr)) = name.split_once('.') {
                attr_symbol(res, attr)
            } else {
                ref_symbol(name)
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, overrides: &[(&str, &str)]) -> Evaluated {
        let t = Template::parse(text).unwrap();
        let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        t.evaluate(&overrides, &Pseudo { region: "eu-west-1".into(), stack_name: "s".into() }).unwrap()
    }

    const T: &str = r#"
Parameters:
  Size: { Type: Number, Default: 3, MinValue: 1 }
  Store: { Type: String, AllowedValues: [r2, s3], Default: r2 }
Conditions:
  UseS3: !Equals [!Ref Store, s3]
  NotS3: !Not [!Condition UseS3]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      Name: !Sub "q-${Size}-${AWS::Region}-${Other.Arn}-${!Literal}"
      Long: { "Fn::Sub": "x${Size}" }
      Choice: !If [UseS3, yes-s3, !Ref AWS::NoValue]
      List: [a, !If [NotS3, !Ref AWS::NoValue, b], !GetAtt Other.Arn, !Ref Other]
  Only:
    Type: AWS::S3::Bucket
    Condition: UseS3
"#;

    #[test]
    fn short_and_long_forms_evaluate_against_the_region_and_the_parameters() {
        let e = eval(T, &[]);
        let q = &e.resources["Q"];
        assert_eq!(q.text("Name").unwrap(), "q-3-eu-west-1-<Other.Arn>-${Literal}");
        assert_eq!(q.text("Long").unwrap(), "x3");
        assert!(q.get("Choice").is_none(), "AWS::NoValue removes the key");
        let list: Vec<String> =
            q.get("List").unwrap().as_sequence().unwrap().iter().filter_map(scalar_string).collect();
        assert_eq!(list, ["a", "<Other.Arn>", "<ref:Other>"]);
        assert!(!e.resources.contains_key("Only"), "a false condition drops the resource");
    }

    #[test]
    fn overrides_switch_conditions_and_are_checked_against_the_declaration() {
        let e = eval(T, &[("Store", "s3"), ("Size", "7")]);
        assert_eq!(e.resources["Q"].text("Choice").unwrap(), "yes-s3");
        assert!(e.resources.contains_key("Only"));

        let t = Template::parse(T).unwrap();
        let pseudo = Pseudo { region: "r".into(), stack_name: "s".into() };
        let bad = |k: &str, v: &str| t.evaluate(&[(k.to_string(), v.to_string())].into(), &pseudo).unwrap_err();
        assert!(matches!(bad("Store", "gcs"), CfnError::BadParameter { .. }));
        assert!(matches!(bad("Size", "0"), CfnError::BadParameter { .. }));
        assert!(matches!(bad("Size", "three"), CfnError::BadParameter { .. }));
        assert!(matches!(bad("Nope", "1"), CfnError::BadParameter { .. }));
    }

    #[test]
    fn a_parameter_without_default_or_override_is_an_error() {
        let t = Template::parse("Parameters:\n  X: { Type: String }\nResources: {}\n").unwrap();
        let err = t.evaluate(&BTreeMap::new(), &Pseudo { region: "r".into(), stack_name: "s".into() }).unwrap_err();
        assert!(matches!(err, CfnError::NoValue(ref n) if n == "X"), "{err}");
    }
}
