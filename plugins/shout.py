"""An example plugin loaded from `plugins_dir`: adds a `shout` filter to templates.

Use it in a rule as `message: "{{ data.image_name | shout }}"`.
"""

from jinja2.sandbox import SandboxedEnvironment

from hookwise.plugin import hookimpl


def shout(value: object) -> str:
    return f"{str(value).upper()}!"


@hookimpl
def hookwise_prepare_jinja(env: SandboxedEnvironment) -> None:
    env.filters["shout"] = shout
