"""The Jinja sandbox service templates render in: immutable, without other
templates, with powers, repetitions and the clock checked as it runs."""
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .tokens import yaml_token
from .values import TemplateError, check_deadline

MAX_POWER_BITS = 16384  # more digits than Python turns into text anyway
MAX_REPEAT = 1_000_000


def fail(message):
    """Template global: refuse the options with a message for whoever gave them."""
    raise TemplateError(str(message))


class _InventoryEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox without other templates: ``include``, ``import`` and ``extends`` get here.

    Immutable: a template must not change the options and cluster it is given
    (``options.update(...)``, ``hosts.append(...)``); ``namespace()`` is there
    for state.
    """

    def get_template(self, *args, **kwargs):
        raise TemplateError(
            "a service template is a single file: include, import and extends are not available"
        )

    select_template = get_template

    # A power or a repetition runs in C, where no deadline can stop it: they
    # are checked before they are computed.
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        check_deadline()
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
                and right * abs(left).bit_length() > MAX_POWER_BITS:
            raise TemplateError(f"{left} ** {right} is too large a number for an inventory")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_REPEAT:
                    raise TemplateError(f"repeating {len(sequence)} items {times} times makes more than "
                                        f"{MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)

    def call(self, /, *args, **kwargs):  # positional-only: a template may pass a keyword named self
        check_deadline()
        return super().call(*args, **kwargs)

    def getattr(self, obj, attribute):
        check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        check_deadline()
        return super().getitem(obj, argument)


def _make_environment():
    environment = _InventoryEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=yaml_token,
    )
    environment.globals["fail"] = fail
    del environment.globals["lipsum"]
    return environment


ENVIRONMENT = _make_environment()
