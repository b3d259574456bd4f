"""Expands infra/template.yaml (AWS SAM) into plain CloudFormation, offline, once per region.

    expand.py TEMPLATE SAMCONFIG OUTDIR

For every environment of SAMCONFIG with deploy parameters, writes OUTDIR/<env>.json: the
template as CloudFormation will receive it, with that environment's parameter overrides and
region. The SAM translator needs no AWS account; it does need code locations it can name, so
the local zip paths (functions and layers) are replaced by s3:// placeholders (sam deploy uploads the real zips).
Exits non-zero, with the translator's message, when the template is not valid SAM.
"""

import json
import os
import sys
import tomllib

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator reads it on import

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class OfflineManagedPolicies:
    """The translator asks IAM for managed-policy ARNs only for SAM's policy templates, which
    this template does not use; answering from a fixed empty map keeps it offline."""

    def load(self):
        pass

    def get(self, name):
        return None


def expand(template_text, params, region):
    os.environ["AWS_DEFAULT_REGION"] = region
    template = yaml_parse(template_text)
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://offline-placeholder/{name}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://offline-placeholder/{name}.zip"
    return transform(template, params, OfflineManagedPolicies())


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        template_text = f.read()
    with open(argv[2], "rb") as f:
        samconfig = tomllib.load(f)
    os.makedirs(argv[3], exist_ok=True)
    envs = 0
    for env, commands in samconfig.items():
        deploy = commands.get("deploy", {}).get("parameters") if isinstance(commands, dict) else None
        if not deploy:
            continue
        overrides = deploy.get("parameter_overrides", [])
        if isinstance(overrides, str):
            overrides = overrides.split()
        params = dict(item.split("=", 1) for item in overrides)
        try:
            expanded = expand(template_text, params, deploy["region"])
        except InvalidDocumentException as e:
            for cause in e.causes:
                print(f"expand: {env}: {cause.message}", file=sys.stderr)
            sys.exit(1)
        out = os.path.join(argv[3], f"{env}.json")
        with open(out, "w") as f:
            json.dump(expanded, f, indent=1, sort_keys=True)
        print(f"expand: {out}: {len(expanded.get('Resources', {}))} resources", file=sys.stderr)
        envs += 1
    if envs == 0:
        sys.exit(f"expand: {argv[2]} has no environment with deploy parameters")


if __name__ == "__main__":
    main(sys.argv)
