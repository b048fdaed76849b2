"""Every route of the API, and the factories that find the object a path
names. A factory answers 404 for a project the caller may not see (is not a
member of), so that its existence is not revealed; views then check
permissions, the one ACL check of a request."""
from pyramid.httpexceptions import HTTPForbidden

from .errors import NotFound


def _visible(request, obj, what):
    user = request.identity
    if user is None:
        raise HTTPForbidden()  # -> 401: say nothing about objects to strangers
    if obj is None or not user.sees(obj):
        raise NotFound(f"No {what} named {request.matchdict[what]!r} that you can see.")
    return obj


def project_factory(request):
    return _visible(request, request.app_root.projects.get(request.matchdict["project"]), "project")


def service_factory(request):
    if request.identity is None:
        raise HTTPForbidden()
    service = request.app_root.services.get(request.matchdict["service"])
    if service is None:
        raise NotFound(f"No service named {request.matchdict['service']!r}; see GET /v1/services.")
    return service


def service_version_factory(request):
    service = service_factory(request)
    entry = service.get(request.matchdict["version"])
    if entry is None:
        raise NotFound(f"{service.name} has no version {request.matchdict['version']!r}; it has "
                       f"{', '.join(service.versions_newest_first())}.")
    return entry


def _child(request, parent, container, key, what):
    """The child of `parent` the path names, or 404 naming where it looked."""
    child = getattr(parent, container).get(request.matchdict[key])
    if child is None:
        raise NotFound(f"{parent.type.capitalize()} {parent.name!r} has no {what} named {request.matchdict[key]!r}.")
    return child


def cluster_factory(request):
    return _child(request, project_factory(request), "clusters", "cluster", "cluster")


def run_factory(request):
    return _child(request, cluster_factory(request), "runs", "run", "run")


def job_factory(request):
    return _child(request, cluster_factory(request), "jobs", "job", "job")


def includeme(config):
    add = config.add_route
    # Pyramid tries routes in the order added: clusters and jobs, the most
    # requested, come first.
    clusters = "/v1/projects/{project}/clusters"
    add("clusters", clusters, factory=project_factory)
    # PUT may create the cluster, so its context is the project.
    add("cluster_put", clusters + "/{cluster}", factory=project_factory, request_method="PUT")
    add("cluster", clusters + "/{cluster}", factory=cluster_factory)
    add("cluster_retry", clusters + "/{cluster}/retry", factory=cluster_factory)
    add("cluster_inventory", clusters + "/{cluster}/inventory", factory=cluster_factory)
    add("cluster_runs", clusters + "/{cluster}/runs", factory=cluster_factory)
    add("cluster_run", clusters + "/{cluster}/runs/{run}", factory=run_factory)
    add("run_events", clusters + "/{cluster}/runs/{run}/events", factory=run_factory)
    add("run_stdout", clusters + "/{cluster}/runs/{run}/stdout", factory=run_factory)
    jobs = clusters + "/{cluster}/jobs"
    add("jobs", jobs, factory=cluster_factory)
    add("job_counts", jobs + "/counts", factory=cluster_factory)  # "counts" is no job's name
    add("job", jobs + "/{job}", factory=job_factory)
    add("job_restart", jobs + "/{job}/restart", factory=job_factory)
    add("job_stdout", jobs + "/{job}/stdout", factory=job_factory)
    add("job_stderr", jobs + "/{job}/stderr", factory=job_factory)
    add("version", "/v1/version")
    add("openapi", "/v1/openapi.json")
    add("healthz", "/healthz")
    add("info", "/v1/info")
    add("workers", "/v1/workers")
    add("token", "/v1/auth/token")
    add("session", "/v1/auth/session")  # the status page's sign-in (security.py)
    add("me", "/v1/users/me")
    add("users", "/v1/users")
    add("user", "/v1/users/{user}")  # "me" is matched first and reserved
    add("projects", "/v1/projects")
    add("project", "/v1/projects/{project}", factory=project_factory)
    add("members", "/v1/projects/{project}/members", factory=project_factory)
    add("member", "/v1/projects/{project}/members/{user}", factory=project_factory)
    add("project_uploads", "/v1/projects/{project}/uploads", factory=project_factory)
    add("credentials", "/v1/projects/{project}/credentials", factory=project_factory)
    add("credential", "/v1/projects/{project}/credentials/{credential}", factory=project_factory)
    add("services", "/v1/services")
    add("service", "/v1/services/{service}", factory=service_factory)
    add("service_version", "/v1/services/{service}/{version}", factory=service_version_factory)
    for part in ("template", "options", "playbooks"):
        add(f"service_{part}", f"/v1/services/{{service}}/{{version}}/{part}", factory=service_version_factory)
    add("all_jobs", "/v1/jobs")
    add("job_reports", "/v1/job-reports")
    add("agent_poll", "/v1/agents/poll")
    add("agent_reports", "/v1/agents/reports")
    add("agent_files", "/v1/agents/files")
    add("uploads", "/v1/uploads")
    add("warnings", "/v1/warnings")
    add("events", "/v1/events")
    webhooks = "/v1/projects/{project}/webhooks"
    add("webhooks", webhooks, factory=project_factory)
    add("webhook", webhooks + "/{webhook}", factory=project_factory)
    add("webhook_deliveries", webhooks + "/{webhook}/deliveries", factory=project_factory)
