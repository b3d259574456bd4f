#!/usr/bin/env bash
# The deploy's offline checks (make test and make deploy run them; no AWS account needed):
#
#   1. cfn-lint on infra/template.yaml (the AWS SAM template)
#   2. the template expanded to plain CloudFormation by the SAM translator, once per region of
#      infra/samconfig.toml, into target/infra/<env>.json
#   3. cfn-lint on each expanded template: what CloudFormation itself will receive (this is
#      where dependency cycles between generated resources show up)
#
# The deploy rules (connection budget, timeouts, attempts, least privilege, alarms, rollout)
# are Rust tests of the stolentee-infra crate (infra/check), run by cargo test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

bin="$(scripts/deploy-tools.sh lint)"
out="$(cargo_target_dir)/infra"
mkdir -p "$out"

say "cfn-lint infra/template.yaml"
"$bin/cfn-lint" infra/template.yaml

say "expanding to CloudFormation per region"
# The translator prints feature-toggle and metrics chatter on stderr; keep only its verdicts.
"$bin/python" infra/tools/expand.py infra/template.yaml infra/samconfig.toml "$out" 2> >(grep -E '^expand:' >&2)

say "cfn-lint on the expanded templates"
# W1020: the translator substitutes parameters into Fn::Sub and leaves the Fn::Sub behind.
"$bin/cfn-lint" --ignore-checks W1020 -- "$out"/*.json
say "ok: template lints clean, expands for every region, and the expansion lints clean"
