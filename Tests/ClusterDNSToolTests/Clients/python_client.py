"""The official Kubernetes Python client (PyPI `kubernetes`) against a live `clusterdns serve --api`.

Run by APIServeTests: `python_client.py PHASE SERVER CA ADMIN_TOKEN VIEWER_TOKEN DNS_PORT [STATE_FILE]`.
Each case prints `ok <name>` when it passes; the first failure raises and exits non-zero. The
Swift test checks that every case it expects printed `ok`, so a case that is skipped fails too.

Phase `live` runs against a fresh server and writes the resourceVersion of a change into
STATE_FILE; the test then restarts the server on the same --state, and phase `restarted` checks
that a watch from that version is refused with 410 Gone (the history is not kept across restarts)
while a watch from a fresh list's version works.
"""

import json
import subprocess
import sys

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

phase, server, ca, admin_token, viewer_token, dns_port = sys.argv[1:7]
state_file = sys.argv[7] if len(sys.argv) > 7 else None


def api_client(token):
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = ca
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


admin = api_client(admin_token)
core = client.CoreV1Api(admin)


def dig(name, qtype="A"):
    result = subprocess.run(["dig", "@127.0.0.1", "-p", dns_port, "+time=2", "+tries=1", "+short", name, qtype],
                            capture_output=True, text=True, timeout=10)
    return result.stdout.split()


def rcode(name):
    result = subprocess.run(["dig", "@127.0.0.1", "-p", dns_port, "+time=2", "+tries=1", name],
                            capture_output=True, text=True, timeout=10)
    for word in ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"):
        if "status: " + word in result.stdout:
            return word
    return result.stdout


def expect_status(code, reason, call):
    try:
        call()
    except ApiException as error:
        assert error.status == code, "expected %d, got %d: %s" % (code, error.status, error.body)
        if reason is not None:
            body = json.loads(error.body)
            assert body["kind"] == "Status" and body["reason"] == reason, error.body
        return
    raise AssertionError("expected %d %s, the call succeeded" % (code, reason))


def ok(name):
    print("ok " + name, flush=True)


def service(name, labels, ports):
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1ServiceSpec(selector={"app": name},
                                  ports=[client.V1ServicePort(name=n, port=p) for n, p in ports]))


def live():
    version = client.VersionApi(admin).get_code()
    assert version.git_version.startswith("v1."), version
    assert "v1" in client.CoreApi(admin).get_api_versions().versions
    groups = [g.name for g in client.ApisApi(admin).get_api_versions().groups]
    assert "discovery.k8s.io" in groups, groups
    ok("discovery")

    created = core.create_namespaced_service("default", service("py", {"app": "py", "tier": "back"}, [("http", 80)]))
    ip = created.spec.cluster_ip
    assert ip and created.metadata.resource_version and created.metadata.uid, created.metadata
    assert created.spec.ports[0].target_port == 80, created.spec.ports
    # DNS follows once the create has returned.
    assert dig("py.default.svc.cluster.local") == [ip], dig("py.default.svc.cluster.local")
    ok("create")

    dry = core.create_namespaced_service("default", service("dry", {}, [("http", 80)]), dry_run="All")
    assert dry.spec.cluster_ip, dry.spec
    expect_status(404, "NotFound", lambda: core.read_namespaced_service("dry", "default"))
    assert rcode("dry.default.svc.cluster.local") == "NXDOMAIN"
    ok("dry-run")

    core.create_namespaced_service("default", service("other", {"app": "other"}, [("dns", 53)]))
    names = lambda items: sorted(s.metadata.name for s in items.items)
    assert names(core.list_namespaced_service("default", label_selector="tier=back")) == ["py"]
    assert names(core.list_namespaced_service("default", label_selector="app in (py,other),tier!=back")) == ["other"]
    assert names(core.list_service_for_all_namespaces(field_selector="metadata.name=other")) == ["other"]
    assert names(core.list_namespaced_service("default", field_selector="spec.type=NodePort")) == []
    ok("selectors")

    first = core.list_namespaced_service("default", limit=1)
    assert len(first.items) == 1 and first.metadata._continue, first.metadata
    rest = core.list_namespaced_service("default", limit=10, _continue=first.metadata._continue)
    assert len(rest.items) >= 1 and not rest.metadata._continue
    assert first.items[0].metadata.name not in [s.metadata.name for s in rest.items]
    ok("pages")

    # A strategic merge patch (the client's choice for a dict body): ports merge by port.
    before = created.metadata.resource_version
    patched = core.patch_namespaced_service("py", "default", {"spec": {"ports": [{"name": "alt", "port": 8080}]}})
    assert sorted(p.port for p in patched.spec.ports) == [80, 8080], patched.spec.ports
    assert patched.spec.cluster_ip == ip
    assert dig("_alt._tcp.py.default.svc.cluster.local", "SRV") == ["0", "100", "8080", "py.default.svc.cluster.local."]
    ok("patch")

    # An update carrying the version it read before the patch is stale: 409, nothing written.
    stale = core.read_namespaced_service("py", "default")
    stale.metadata.resource_version = before
    stale.metadata.labels["stale"] = "yes"
    expect_status(409, "Conflict", lambda: core.replace_namespaced_service("py", "default", stale))
    assert "stale" not in core.read_namespaced_service("py", "default").metadata.labels
    fresh = core.read_namespaced_service("py", "default")
    fresh.metadata.labels["fresh"] = "yes"
    replaced = core.replace_namespaced_service("py", "default", fresh)
    assert replaced.metadata.labels["fresh"] == "yes" and replaced.spec.cluster_ip == ip
    ok("conflict")

    # A watch from a version sees every change after it, in order, then the ones that follow.
    events = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_service, "default", resource_version=before, timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name, event["object"].metadata.labels.get("fresh")))
        if len(events) == 3:
            core.delete_namespaced_service("other", "default")
        if len(events) == 4:
            w.stop()
    assert events == [("ADDED", "other", None), ("MODIFIED", "py", None), ("MODIFIED", "py", "yes"),
                      ("DELETED", "other", None)], events
    ok("watch-resumed")

    # A pod's status makes it an endpoint of the service that selects it.
    core.create_namespaced_pod("default", client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-0", labels={"app": "py"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="app")])))
    core.patch_namespaced_pod_status("py-0", "default", {"status": {
        "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}],
        "conditions": [{"type": "Ready", "status": "True"}]}})
    endpoints = core.read_namespaced_endpoints("py", "default")
    assert [a.ip for a in endpoints.subsets[0].addresses] == ["10.244.0.7"], endpoints.subsets
    slices = client.DiscoveryV1Api(admin).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=py")
    assert [e.addresses for e in slices.items[0].endpoints] == [["10.244.0.7"]], slices.items
    ok("endpoints")

    viewer = client.CoreV1Api(api_client(viewer_token))
    assert "py" in names(viewer.list_namespaced_service("default"))
    expect_status(403, "Forbidden", lambda: viewer.create_namespaced_service("default", service("no", {}, [("http", 80)])))
    expect_status(403, "Forbidden", lambda: viewer.delete_namespaced_service("py", "default"))
    ok("viewer")

    stranger = client.CoreV1Api(api_client("0" * 64))
    expect_status(401, "Unauthorized", lambda: stranger.list_namespaced_service("default"))
    ok("unauthorized")

    invalid = service("bad", {}, [("http", 80)])
    invalid.spec.ports[0].port = 70000
    try:
        core.create_namespaced_service("default", invalid)
        raise AssertionError("an invalid port was accepted")
    except ApiException as error:
        body = json.loads(error.body)
        assert error.status == 422 and body["reason"] == "Invalid", error.body
        assert body["details"]["causes"][0]["field"] == "spec.ports[0].port", error.body
    ok("invalid")

    core.create_namespaced_service("default", service("gone", {"batch": "1"}, [("http", 80)]))
    core.delete_collection_namespaced_service("default", label_selector="batch=1")
    assert rcode("gone.default.svc.cluster.local") == "NXDOMAIN"
    ok("deletecollection")

    last = core.read_namespaced_service("py", "default").metadata.resource_version
    with open(state_file, "w") as f:
        f.write(last)
    ok("live")


def restarted():
    with open(state_file) as f:
        old = f.read().strip()
    # The service applied through the API survived the restart, with its address.
    kept = core.read_namespaced_service("py", "default")
    assert dig("py.default.svc.cluster.local") == [kept.spec.cluster_ip]
    ok("kept")

    w = watch.Watch()
    try:
        for _ in w.stream(core.list_namespaced_service, "default", resource_version=str(int(old) - 1)):
            pass
        raise AssertionError("a watch from before the restart was not refused")
    except ApiException as error:
        assert error.status == 410 and "Expired" in error.reason, (error.status, error.reason)
    ok("expired")

    # Relisting is the remedy: a watch from the new list's version sees what follows it.
    listed = core.list_namespaced_service("default")
    core.delete_namespaced_service("py", "default")
    assert rcode("py.default.svc.cluster.local") == "NXDOMAIN"
    events = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_service, "default", resource_version=listed.metadata.resource_version,
                          timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name))
        w.stop()
    assert events == [("DELETED", "py")], events
    ok("relisted")


{"live": live, "restarted": restarted}[phase]()
