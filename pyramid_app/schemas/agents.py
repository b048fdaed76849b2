"""What node agents send and are told (pyramid_app/agents.py)."""
import colander

from ..models import job as job_model

from .common import StrictInteger, StrictString
from .jobs import AttemptReport
from .services import AnyObject

MAX_HELD = 100000  # attempt names an agent may say it holds
MAX_REPORTS = 1000
MAX_WAIT = 30


class AgentReport(AttemptReport):
    """One attempt's state, named by job id and attempt. An agent knows the
    jobs it holds: it never says one is "missing" (which would queue it
    again without counting the attempt)."""

    id = colander.SchemaNode(StrictString(), validator=colander.Length(1, 64))
    state = colander.SchemaNode(StrictString(), missing=job_model.REPORT_FINISHED,
                                validator=colander.OneOf(job_model.AGENT_REPORT_STATES))


class Holding(colander.SequenceSchema):
    name = colander.SchemaNode(StrictString(), validator=colander.Length(1, 80))


class AgentReports(colander.SequenceSchema):
    report = AgentReport()


class Poll(colander.MappingSchema):
    component_name = "AgentPoll"
    holding = Holding(missing=(), validator=colander.Length(0, MAX_HELD),
                      description="The attempts (<job id>-<attempt>) the agent holds: queued, running, "
                                  "or ended with the end not reported yet.")
    wait = colander.SchemaNode(StrictInteger(), missing=0, validator=colander.Range(0, MAX_WAIT),
                               description="Seconds to wait for something to tell.")


class Reports(colander.MappingSchema):
    component_name = "AgentReports"
    reports = AgentReports(validator=colander.Length(0, MAX_REPORTS))
    holding = Holding(missing=(), validator=colander.Length(0, MAX_HELD))


class Jobs(colander.SequenceSchema):
    job = AnyObject()


class Names(colander.SequenceSchema):
    name = colander.SchemaNode(colander.String())


class Told(colander.MappingSchema):
    component_name = "AgentInstructions"
    jobs = Jobs(description="Specs of the jobs placed on the node the agent does not hold, in the order to "
                            "start them.")
    drop = Names(description="Attempts the agent holds that are no longer out on its node: forget the queued "
                             "ones, kill the running ones.")


class FileQuery(colander.MappingSchema):
    path = colander.SchemaNode(colander.String(), description="The upload's path, as the job names it.")
