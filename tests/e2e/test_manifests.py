# SPDX-License-Identifier: MIT
"""Every object in deploy/*.yaml and deploy/openshift/*.yaml against the
Kubernetes API schemas, strictly, and the OpenShift variant's content.

Schema: the models of Debian's python3-kubernetes, 22.6 here, which are
Kubernetes 1.22's OpenAPI (the client's major version is the Kubernetes
minor). kubeconform and kubeval are not packaged, and no API server is
available to ask (`kubectl --dry-run=client` still needs discovery).

The client's own deserializer is lenient: it drops keys it does not know
and converts nothing. So the check walks each model's `attribute_map` and
`openapi_types` itself, from the model the client's API class names for
the object's apiVersion and kind, and fails on
  - a key the model does not have (a misspelling, or a field newer than
    Kubernetes 1.22: such a field is only accepted once it is listed in
    NEWER_FIELDS with its type; deploy/ uses none today),
  - a value of the wrong type (str, int, bool, float, lists, maps, nested
    models; int-or-string where the API has IntOrString; resource
    quantities; a few enumerations the 1.22 schema does not spell out),
  - a required field that is missing or null (the model's constructor
    raises for those with client-side validation on, which is how they are
    found),
  - a duplicate key in the YAML (PyYAML would keep the last one silently),
  - a kind its group/version does not serve, or a namespace on the wrong
    scope,
each with the field's path. Then the client's deserializer must accept the
object too. Objects with no model in the package are checked against a
hand-written schema here (OpenShift's SecurityContextConstraints, from
openshift/api security/v1); an object with neither fails by name.

The validator is shown to bite: test_planted_* feed it broken copies of
the shipped objects and assert each failure names the field.

The OpenShift variant is plain manifests (deploy/openshift/README.md says
why not a kustomize overlay), so its tests read the files: its DaemonSet
must be the generic one with exactly its three changes, its SCC must allow
what that DaemonSet uses and nothing more, and only the service account may
use the SCC.
"""

import copy
import datetime
import difflib
import json
import re
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OPENSHIFT = DEPLOY / "openshift"
MANIFEST_FILES = sorted(DEPLOY.glob("*.yaml")) + sorted(OPENSHIFT.glob("*.yaml"))

CLIENT_VERSION = kubernetes.__version__
# From client 17 on, the client's major version is the Kubernetes minor.
KUBE_MINOR = int(CLIENT_VERSION.split(".")[0])
SCHEMA = f"python3-kubernetes {CLIENT_VERSION} (Kubernetes 1.{KUBE_MINOR} models)"

# Fields deploy/ uses that are newer than the installed models:
# {(model, JSON key): type string}. None today; a field listed here is
# type-checked instead of rejected.
NEWER_FIELDS = {}

# Where the models say "object" but the API means IntOrString.
INT_OR_STRING = {
    ("V1HTTPGetAction", "port"), ("V1TCPSocketAction", "port"),
    ("V1ServicePort", "target_port"), ("V1NetworkPolicyPort", "port"),
    ("V1RollingUpdateDaemonSet", "max_unavailable"), ("V1RollingUpdateDaemonSet", "max_surge"),
    ("V1RollingUpdateDeployment", "max_unavailable"), ("V1RollingUpdateDeployment", "max_surge"),
    ("V1PodDisruptionBudgetSpec", "max_unavailable"),
    ("V1PodDisruptionBudgetSpec", "min_available"),
}
# Where the models say "str" (or a map of them) but the API means a
# resource.Quantity: a number, or a string in the Quantity grammar.
QUANTITY = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
            ("V1EmptyDirVolumeSource", "size_limit")}
QUANTITY_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)"
                         r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
# Enumerations the 1.22 OpenAPI leaves as plain strings (values from the
# API reference), for the fields deploy/ sets.
ENUMS = {
    ("V1PodSpec", "dns_policy"): {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1Container", "image_pull_policy"): {"Always", "Never", "IfNotPresent"},
    ("V1Container", "termination_message_policy"): {"File", "FallbackToLogsOnError"},
    ("V1ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("V1HTTPGetAction", "scheme"): {"HTTP", "HTTPS"},
    ("V1HostPathVolumeSource", "type"): {"", "DirectoryOrCreate", "Directory", "FileOrCreate",
                                         "File", "Socket", "CharDevice", "BlockDevice"},
    ("V1SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("V1Toleration", "operator"): {"Exists", "Equal"},
    ("V1Toleration", "effect"): {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    ("V1DaemonSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
    ("V1DeploymentStrategy", "type"): {"Recreate", "RollingUpdate"},
}


# --- hand-written schemas for objects the package has no model for ------------------

class HandModel:
    """A schema in the shape of a client model: fields by JSON key, with the
    same type strings, plus which keys are required and which may be null."""

    def __init__(self, name, fields, required=(), nullable=()):
        self.__name__ = name
        self.openapi_types = dict(fields)
        self.attribute_map = {k: k for k in fields}
        self.required = set(required)
        self.nullable = set(nullable)


def _scc_models():
    """OpenShift's SecurityContextConstraints, security.openshift.io/v1, as
    its CRD in openshift/api (security/v1, the Default feature set) has it:
    twelve keys required, most of them nullable."""
    strategy = {"type": "str"}
    models = [
        HandModel("SccIDRange", {"min": "int", "max": "int"}),
        HandModel("SccRunAsUserStrategyOptions",
                  {**strategy, "uid": "int", "uidRangeMin": "int", "uidRangeMax": "int"}),
        HandModel("SccSELinuxContextStrategyOptions",
                  {**strategy, "seLinuxOptions": "V1SELinuxOptions"}),
        HandModel("SccGroupStrategyOptions", {**strategy, "ranges": "list[SccIDRange]"}),
        HandModel("SccAllowedFlexVolume", {"driver": "str"}, required=["driver"]),
        HandModel("SecurityContextConstraints", {
            "apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
            "priority": "int",
            "allowPrivilegedContainer": "bool",
            "allowPrivilegeEscalation": "bool", "defaultAllowPrivilegeEscalation": "bool",
            "allowedCapabilities": "list[str]", "defaultAddCapabilities": "list[str]",
            "requiredDropCapabilities": "list[str]",
            "allowHostDirVolumePlugin": "bool", "volumes": "list[str]",
            "allowedFlexVolumes": "list[SccAllowedFlexVolume]",
            "allowHostNetwork": "bool", "allowHostPorts": "bool",
            "allowHostPID": "bool", "allowHostIPC": "bool",
            "readOnlyRootFilesystem": "bool",
            "runAsUser": "SccRunAsUserStrategyOptions",
            "seLinuxContext": "SccSELinuxContextStrategyOptions",
            "fsGroup": "SccGroupStrategyOptions", "supplementalGroups": "SccGroupStrategyOptions",
            "users": "list[str]", "groups": "list[str]", "seccompProfiles": "list[str]",
            "allowedUnsafeSysctls": "list[str]", "forbiddenSysctls": "list[str]",
        }, required=[
            "allowHostDirVolumePlugin", "allowHostIPC", "allowHostNetwork", "allowHostPID",
            "allowHostPorts", "allowPrivilegedContainer", "allowedCapabilities",
            "defaultAddCapabilities", "priority", "readOnlyRootFilesystem",
            "requiredDropCapabilities", "volumes",
        ], nullable=[
            "priority", "allowPrivilegeEscalation", "defaultAllowPrivilegeEscalation",
            "allowedCapabilities", "defaultAddCapabilities", "requiredDropCapabilities",
            "volumes", "allowedFlexVolumes", "runAsUser", "seLinuxContext", "fsGroup",
            "supplementalGroups", "users", "groups", "seccompProfiles",
            "allowedUnsafeSysctls", "forbiddenSysctls",
        ]),
    ]
    return {m.__name__: m for m in models}


HAND_MODELS = _scc_models()
# (apiVersion, kind) -> (hand-written model, namespaced)
HAND_KINDS = {("security.openshift.io/v1", "SecurityContextConstraints"):
              (HAND_MODELS["SecurityContextConstraints"], False)}
ENUMS.update({
    ("SccRunAsUserStrategyOptions", "type"): {"MustRunAs", "MustRunAsRange",
                                              "MustRunAsNonRoot", "RunAsAny"},
    ("SccSELinuxContextStrategyOptions", "type"): {"MustRunAs", "RunAsAny"},
    ("SccGroupStrategyOptions", "type"): {"MustRunAs", "RunAsAny"},
})


# --- loading -------------------------------------------------------------------------

class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_objects(path):
    """[(label, object)] of one file; a YAML error fails with its place."""
    try:
        docs = list(yaml.load_all(Path(path).read_text(), Loader=StrictLoader))
    except yaml.YAMLError as e:
        pytest.fail(f"{path}: {e}", pytrace=False)
    out = []
    for d in docs:
        if d is None:
            continue
        kind, name = "?", None
        if isinstance(d, dict):
            kind, name = d.get("kind"), (d.get("metadata") or {}).get("name")
        out.append((f"{Path(path).name}: {kind}/{name}", d))
    return out


# --- the walker ------------------------------------------------------------------------

def model_class(name):
    if name in HAND_MODELS:
        return HAND_MODELS[name]
    cls = getattr(client, name, None)
    assert cls is not None and hasattr(cls, "openapi_types"), f"no model {name} in {SCHEMA}"
    return cls


_REQUIRED = {}


def required_keys(model):
    """JSON keys the model requires. For the client's models: what its
    constructor refuses to leave None (client-side validation)."""
    name = model.__name__
    if name not in _REQUIRED:
        if isinstance(model, HandModel):
            _REQUIRED[name] = set(model.required)
        else:
            cfg = client.Configuration()
            cfg.client_side_validation = True
            kwargs, found = {}, set()
            while True:
                try:
                    model(local_vars_configuration=cfg, **kwargs)
                    break
                except ValueError as e:
                    m = re.match(r"Invalid value for `(\w+)`, must not be `None`", str(e))
                    assert m and m.group(1) not in kwargs, f"{name}: {e}"
                    kwargs[m.group(1)] = "placeholder"
                    found.add(model.attribute_map[m.group(1)])
            _REQUIRED[name] = found
    return _REQUIRED[name]


def describe(value):
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) \
        else type(value).__name__


class Checker:
    def __init__(self):
        self.errors = []

    def fail(self, path, msg):
        self.errors.append(f"{path or '(top)'}: {msg}")

    def value(self, v, t, path, owner=None):
        """Check v against type string t; owner is (model name, attr)."""
        if v is None:
            return  # null is "unset"; required fields are checked by the owner
        if owner in INT_OR_STRING:
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                self.fail(path, f"expected int or string, got {describe(v)}")
            return
        if owner in QUANTITY:
            if t.startswith("dict("):
                if not isinstance(v, dict):
                    self.fail(path, f"expected a map of quantities, got {describe(v)}")
                    return
                for k, q in v.items():
                    self.quantity(q, f"{path}['{k}']")
            else:
                self.quantity(v, path)
            return
        m = re.fullmatch(r"list\[(.+)\]", t)
        if m:
            if not isinstance(v, list):
                self.fail(path, f"expected a list of {m.group(1)}, got {describe(v)}")
                return
            for i, item in enumerate(v):
                self.value(item, m.group(1), f"{path}[{i}]")
            return
        m = re.fullmatch(r"dict\(str, (.+)\)", t)
        if m:
            if not isinstance(v, dict):
                self.fail(path, f"expected a map of {m.group(1)}, got {describe(v)}")
                return
            for k, item in v.items():
                if not isinstance(k, str):
                    self.fail(f"{path}[{k!r}]", f"map key must be a string, got {describe(k)}")
                self.value(item, m.group(1), f"{path}['{k}']")
            return
        if t == "str":
            ok = isinstance(v, str)
        elif t == "int":
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif t == "float":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif t == "bool":
            ok = isinstance(v, bool)
        elif t in ("datetime", "date"):
            ok = isinstance(v, (str, datetime.date))
        elif t == "object":
            ok = True  # free-form JSON (RawExtension and the like)
        else:
            self.model(v, model_class(t), path)
            return
        if not ok:
            self.fail(path, f"expected {t}, got {describe(v)}")
        elif owner in ENUMS and v not in ENUMS[owner]:
            self.fail(path, f"{v!r} is not one of {sorted(ENUMS[owner])}")

    def quantity(self, q, path):
        if isinstance(q, bool) or not isinstance(q, (int, float, str)) or \
                (isinstance(q, str) and not QUANTITY_RE.match(q)):
            self.fail(path, f"not a resource quantity: {describe(q)}")

    def model(self, obj, model, path):
        name = model.__name__
        if not isinstance(obj, dict):
            self.fail(path, f"expected an object ({name}), got {describe(obj)}")
            return
        by_key = {key: attr for attr, key in model.attribute_map.items()}
        nullable = getattr(model, "nullable", set())
        for key, v in obj.items():
            sub = f"{path}.{key}" if path else str(key)
            attr = by_key.get(key)
            if attr is None:
                if (name, key) in NEWER_FIELDS:
                    self.value(v, NEWER_FIELDS[(name, key)], sub)
                    continue
                hint = difflib.get_close_matches(str(key), list(by_key), n=1, cutoff=0.75)
                self.fail(sub, f"unknown field: {name} has no {key!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else
                             f" (a misspelling, or a field newer than Kubernetes 1.{KUBE_MINOR}:"
                             " list it in NEWER_FIELDS with its type)"))
                continue
            self.value(v, model.openapi_types[attr], sub, owner=(name, attr))
        for key in sorted(required_keys(model)):
            sub = f"{path}.{key}" if path else key
            if key not in obj:
                self.fail(sub, f"required field missing ({name})")
            elif obj[key] is None and key not in nullable:
                self.fail(sub, f"required field is null ({name})")


def schema_for(doc):
    """(model, namespaced, how) for an object, from its apiVersion and kind:
    the client's API class for the group/version must serve the kind, and
    its create method names the model. None when nothing knows the kind."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if (api_version, kind) in HAND_KINDS:
        model, namespaced = HAND_KINDS[(api_version, kind)]
        return model, namespaced, "hand-written schema"
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group, _, version = api_version.rpartition("/")
    group = group.removesuffix(".k8s.io") or "core"
    api = getattr(client, "".join(w.capitalize() for w in group.split("."))
                  + version.capitalize() + "Api", None)
    if api is None:
        return None
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", kind))
    snake = snake.lower()
    for method, namespaced in ((f"create_namespaced_{snake}", True), (f"create_{snake}", False)):
        fn = getattr(api, method, None)
        if fn is not None:
            m = re.search(r":param (\w+) body: \(required\)", fn.__doc__ or "")
            assert m, f"{api.__name__}.{method}: no body model in its docstring"
            return model_class(m.group(1)), namespaced, m.group(1)
    return None


class _Response:
    """What ApiClient.deserialize reads: the body as JSON in .data."""

    def __init__(self, obj):
        self.data = json.dumps(obj, default=str)


def validate(doc):
    """(errors, how): every problem with one object, each naming its path."""
    if not isinstance(doc, dict):
        return [f"(top): expected an object, got {describe(doc)}"], None
    found = schema_for(doc)
    if found is None:
        return [f"(top): no schema for apiVersion {doc.get('apiVersion')!r} kind "
                f"{doc.get('kind')!r}: {SCHEMA} has no model for it and this test no "
                "hand-written one (add one to HAND_KINDS)"], None
    model, namespaced, how = found
    c = Checker()
    c.model(doc, model, "")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        c.fail("metadata.name", "required field missing (kubectl apply needs a name)")
    elif namespaced and not meta.get("namespace"):
        c.fail("metadata.namespace", f"{doc['kind']} is namespaced: name its namespace")
    elif not namespaced and "namespace" in meta:
        c.fail("metadata.namespace", f"{doc['kind']} is cluster-scoped: it has no namespace")
    if not c.errors and not isinstance(model, HandModel):
        # The client's own deserializer must take it too (it checks the
        # required fields once more, without paths).
        try:
            client.ApiClient().deserialize(_Response(doc), model.__name__)
        except (ValueError, TypeError) as e:
            c.fail("", f"the client's deserializer refuses it: {e}")
    return c.errors, how


def check_file(path):
    """[(label, how)] for a file whose objects all validate; fails with every
    error of every object otherwise."""
    problems, seen = [], []
    for label, doc in load_objects(path):
        errors, how = validate(doc)
        problems += [f"{label}: {e}" for e in errors]
        seen.append((label, how))
    assert not problems, "\n".join(problems)
    return seen


# --- the shipped manifests ---------------------------------------------------------------

@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_matches_api_schema(path, report_line):
    seen = check_file(path)
    assert seen, f"{path}: no objects"
    where = path.parent.relative_to(REPO)
    for label, how in seen:
        report_line(f"schema: {where}/{label}: "
                    + ("the hand-written SCC schema (openshift/api security/v1)"
                       if how == "hand-written schema" else f"{how} of {SCHEMA}"))


def test_every_kind_shipped_has_a_schema():
    """Every object is validated against something: a model of the client or
    a hand-written schema, never skipped."""
    kinds = {}
    for path in MANIFEST_FILES:
        for label, doc in load_objects(path):
            found = schema_for(doc)
            assert found, f"{label}: no schema"
            kinds[doc["kind"]] = found[2]
    assert kinds == {
        "Namespace": "V1Namespace", "ServiceAccount": "V1ServiceAccount",
        "ClusterRole": "V1ClusterRole", "ClusterRoleBinding": "V1ClusterRoleBinding",
        "Role": "V1Role", "RoleBinding": "V1RoleBinding", "ConfigMap": "V1ConfigMap",
        "DaemonSet": "V1DaemonSet", "Deployment": "V1Deployment", "Service": "V1Service",
        "SecurityContextConstraints": "hand-written schema",
    }, kinds


# --- the validator bites -------------------------------------------------------------

def shipped(kind, name, where=DEPLOY):
    for path in sorted(where.glob("*.yaml")):
        for _, doc in load_objects(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise AssertionError(f"no {kind}/{name} in {where}")


def planted_errors(tmp_path, doc):
    """The errors check_file reports for doc written to a file."""
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(AssertionError) as e:
        check_file(path)
    return str(e.value)


POD = ("spec", "template", "spec")


def at(doc, *keys):
    for k in keys:
        doc = doc[k]
    return doc


def ds_container(doc):
    return at(doc, *POD, "containers")[0]


def _misspelled(ds):
    pod = at(ds, *POD)
    pod["containres"] = pod.pop("containers")


def _port_as_string(ds):
    ds_container(ds)["ports"][0]["containerPort"] = "9447"


def _container_without_name(ds):
    del ds_container(ds)["name"]


def _annotation_as_int(ds):
    at(ds, "spec", "template", "metadata").setdefault("annotations", {})["example/port"] = 9447


def _bool_as_string(ds):
    ds_container(ds)["securityContext"]["readOnlyRootFilesystem"] = "true"


def _bad_quantity(ds):
    ds_container(ds)["resources"]["limits"]["memory"] = "64MB"


def _bad_enum(ds):
    at(ds, *POD)["dnsPolicy"] = "ClusterFirstWithHostnet"


def _probe_port_as_list(ds):
    ds_container(ds)["livenessProbe"]["httpGet"]["port"] = [9447]


def _object_as_list(ds):
    ds_container(ds)["securityContext"] = []


def _volume_without_path(ds):
    vol = next(v for v in at(ds, *POD, "volumes") if "hostPath" in v)
    del vol["hostPath"]["path"]


def _newer_field(ds):
    at(ds, *POD)["os"] = {"name": "linux"}  # PodSpec.os is Kubernetes 1.23


PLANTED = {
    "misspelled field": (_misspelled, [
        "spec.template.spec.containres: unknown field: V1PodSpec has no 'containres' "
        "(did you mean 'containers'?)",
        "spec.template.spec.containers: required field missing (V1PodSpec)"]),
    "string for an int": (_port_as_string, [
        "spec.template.spec.containers[0].ports[0].containerPort: expected int, got str '9447'"]),
    "missing required field": (_container_without_name, [
        "spec.template.spec.containers[0].name: required field missing (V1Container)"]),
    "int for a string": (_annotation_as_int, [
        "spec.template.metadata.annotations['example/port']: expected str, got int 9447"]),
    "string for a bool": (_bool_as_string, [
        "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem: "
        "expected bool, got str 'true'"]),
    "bad quantity": (_bad_quantity, [
        "spec.template.spec.containers[0].resources.limits['memory']: "
        "not a resource quantity: str '64MB'"]),
    "bad enum value": (_bad_enum, [
        "spec.template.spec.dnsPolicy: 'ClusterFirstWithHostnet' is not one of"]),
    "list for int-or-string": (_probe_port_as_list, [
        "spec.template.spec.containers[0].livenessProbe.httpGet.port: "
        "expected int or string, got list"]),
    "list for an object": (_object_as_list, [
        "spec.template.spec.containers[0].securityContext: "
        "expected an object (V1SecurityContext), got list"]),
    "nested required field": (_volume_without_path, [
        ".hostPath.path: required field missing (V1HostPathVolumeSource)"]),
    "field newer than the models": (_newer_field, [
        "spec.template.spec.os: unknown field: V1PodSpec has no 'os' (a misspelling, or a "
        f"field newer than Kubernetes 1.{KUBE_MINOR}"]),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_planted_daemonset_error_is_caught(case, tmp_path):
    mutate, wanted = PLANTED[case]
    ds = shipped("DaemonSet", "nodetrustd")
    mutate(ds)
    errors = planted_errors(tmp_path, ds)
    for w in wanted:
        assert w in errors, f"wanted {w!r} in:\n{errors}"
    assert errors.startswith("planted.yaml: DaemonSet/nodetrustd: ")


def test_planted_newer_field_is_accepted_once_listed(tmp_path, monkeypatch):
    ds = shipped("DaemonSet", "nodetrustd")
    _newer_field(ds)
    monkeypatch.setitem(NEWER_FIELDS, ("V1PodSpec", "os"), "dict(str, str)")
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(ds))
    check_file(path)
    at(ds, *POD)["os"] = "linux"  # and it is still type-checked
    assert "spec.template.spec.os: expected a map of str, got str 'linux'" in \
        planted_errors(tmp_path, ds)


def test_planted_duplicate_key_is_caught(tmp_path):
    path = tmp_path / "planted.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: y\n"
                    "data:\n  a: one\n  a: two\n")
    with pytest.raises(pytest.fail.Exception) as e:
        check_file(path)
    assert "duplicate key 'a' (first at line 7)" in str(e.value)


def test_planted_kind_scope_and_group_errors(tmp_path):
    # A DaemonSet is apps/v1, not core v1.
    ds = shipped("DaemonSet", "nodetrustd")
    ds["apiVersion"] = "v1"
    assert "no schema for apiVersion 'v1' kind 'DaemonSet'" in planted_errors(tmp_path, ds)
    # A ClusterRole has no namespace; a Role needs one.
    cr = shipped("ClusterRole", "nodetrust:nodetrustd")
    cr["metadata"]["namespace"] = "nodetrust"
    assert "metadata.namespace: ClusterRole is cluster-scoped" in planted_errors(tmp_path, cr)
    sa = shipped("ServiceAccount", "nodetrustd")
    del sa["metadata"]["namespace"]
    assert "metadata.namespace: ServiceAccount is namespaced" in planted_errors(tmp_path, sa)
    # A kind nothing here knows (a CRD such as a ServiceMonitor) fails by
    # name instead of passing unchecked.
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
          "metadata": {"name": "nodetrustd", "namespace": "nodetrust"}, "spec": {}}
    assert "no schema for apiVersion 'monitoring.coreos.com/v1' kind 'ServiceMonitor'" in \
        planted_errors(tmp_path, sm)
    # RBAC: a subject without a name, a roleRef missing.
    rb = shipped("RoleBinding", "nodetrust:nodetrustd")
    del rb["subjects"][0]["name"]
    del rb["roleRef"]
    errors = planted_errors(tmp_path, rb)
    assert "subjects[0].name: required field missing (V1Subject)" in errors
    assert "roleRef: required field missing (V1RoleBinding)" in errors


def test_planted_scc_errors_are_caught(tmp_path):
    """The hand-written SCC schema bites like the models do."""
    scc = shipped("SecurityContextConstraints", "nodetrustd", OPENSHIFT)
    scc["allowHostNetwrok"] = scc.pop("allowHostNetwork")
    del scc["volumes"]
    scc["priority"] = "10"
    scc["seLinuxContext"]["seLinuxOptions"]["typ"] = "spc_t"
    scc["runAsUser"]["type"] = "RunAsAnyone"
    errors = planted_errors(tmp_path, scc)
    for w in ("allowHostNetwrok: unknown field: SecurityContextConstraints has no "
              "'allowHostNetwrok' (did you mean 'allowHostNetwork'?)",
              "allowHostNetwork: required field missing (SecurityContextConstraints)",
              "volumes: required field missing (SecurityContextConstraints)",
              "priority: expected int, got str '10'",
              "seLinuxContext.seLinuxOptions.typ: unknown field: V1SELinuxOptions has no 'typ'",
              "runAsUser.type: 'RunAsAnyone' is not one of"):
        assert w in errors, f"wanted {w!r} in:\n{errors}"
    # Required but nullable: present as null is fine, absent is not.
    scc = shipped("SecurityContextConstraints", "nodetrustd", OPENSHIFT)
    assert scc["priority"] is None and scc["allowedCapabilities"] is None
    del scc["allowedCapabilities"]
    assert "allowedCapabilities: required field missing" in planted_errors(tmp_path, scc)


# --- the OpenShift variant -----------------------------------------------------------------

def diff(a, b, path=""):
    """Paths where two parsed documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_openshift_daemonset_is_the_base_with_three_changes():
    base = shipped("DaemonSet", "nodetrustd")
    ours = shipped("DaemonSet", "nodetrustd", OPENSHIFT)
    want = copy.deepcopy(base)
    want["spec"]["template"]["metadata"].setdefault("annotations", {})[
        "openshift.io/required-scc"] = "nodetrustd"
    pod = at(want, *POD)
    pod["priorityClassName"] = "system-cluster-critical"
    pod["securityContext"]["seLinuxOptions"] = {"type": "spc_t"}
    assert not diff(want, ours), "deploy/openshift/30-daemonset.yaml differs from " \
        "deploy/30-daemonset.yaml in more than its three changes:\n" + "\n".join(diff(want, ours))


def test_openshift_scc_allows_what_the_daemonset_needs_and_no_more():
    ds = shipped("DaemonSet", "nodetrustd", OPENSHIFT)
    pod = at(ds, *POD)
    (c,) = pod["containers"]
    name = ds["spec"]["template"]["metadata"]["annotations"]["openshift.io/required-scc"]
    scc = shipped("SecurityContextConstraints", name, OPENSHIFT)
    assert name != "privileged"

    # Nothing privileged, whatever a pod asks for.
    assert scc["allowPrivilegedContainer"] is False
    assert scc["allowPrivilegeEscalation"] is False
    assert scc["defaultAllowPrivilegeEscalation"] is False
    assert not scc["allowedCapabilities"] and not scc["defaultAddCapabilities"]
    assert scc["requiredDropCapabilities"] == ["ALL"]
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert scc["readOnlyRootFilesystem"] is True
    assert scc["allowHostPID"] is False and scc["allowHostIPC"] is False
    assert not pod.get("hostPID") and not pod.get("hostIPC")
    assert scc["seccompProfiles"] == ["runtime/default"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not scc.get("allowedUnsafeSysctls") and not scc.get("allowedFlexVolumes")

    # What the DaemonSet does use, exactly.
    assert scc["allowHostNetwork"] is bool(pod.get("hostNetwork")) is True
    host_ports = [p["hostPort"] for p in c["ports"] if p.get("hostPort")]
    assert scc["allowHostPorts"] is bool(host_ports)
    used = {k for v in pod["volumes"] for k in v if k != "name"}
    assert scc["allowHostDirVolumePlugin"] is ("hostPath" in used)
    # projected: the service account token, mounted for node status.
    assert set(scc["volumes"]) == used | {"projected"}, scc["volumes"]
    assert scc["seLinuxContext"] == {"type": "MustRunAs", "seLinuxOptions": {"type": "spc_t"}}
    assert pod["securityContext"]["seLinuxOptions"] == {"type": "spc_t"}
    assert scc["runAsUser"] == {"type": "RunAsAny"} and pod["securityContext"]["runAsUser"] == 0

    # Granted by RBAC only: no user or group, no priority to win by.
    assert scc["users"] == [] and scc["groups"] == [] and scc["priority"] is None


def test_openshift_scc_is_granted_to_the_service_account_only():
    ds = shipped("DaemonSet", "nodetrustd", OPENSHIFT)
    ns = ds["metadata"]["namespace"]
    sa = ds["spec"]["template"]["spec"]["serviceAccountName"]
    scc = ds["spec"]["template"]["metadata"]["annotations"]["openshift.io/required-scc"]
    docs = [d for p in sorted(OPENSHIFT.glob("*.yaml")) for _, d in load_objects(p)]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == 1
    (b,) = bindings
    # In the namespace only: a RoleBinding, not a ClusterRoleBinding.
    assert b["kind"] == "RoleBinding" and b["metadata"]["namespace"] == ns
    assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    role = roles[b["roleRef"]["name"]]
    assert b["roleRef"]["kind"] == role["kind"]
    assert role["rules"] == [{"apiGroups": ["security.openshift.io"],
                              "resources": ["securitycontextconstraints"],
                              "resourceNames": [scc], "verbs": ["use"]}]
    # The service account itself is the generic one.
    shipped("ServiceAccount", sa)


# --- node status (RegistryTrustReady and its events) ----------------------------------

NODE_STATUS_RULES = [{"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]
NODE_EVENTS_RULES = [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
# Where the agent creates every event (agent/node-condition.c, node-status.c;
# test_node_status.py sees it POST there and nowhere else).
EVENTS_NAMESPACE = "default"


def test_node_status_rbac_is_exactly_patch_status_and_create_events():
    """The DaemonSet's service account may patch nodes/status cluster-wide
    (a ClusterRole and a ClusterRoleBinding: nodes are cluster-scoped and
    RBAC cannot say "this node") and create events in "default" only (a
    ClusterRole bound by one RoleBinding there, none cluster-wide); each
    role is bound to it alone, and no other role shipped grants anything
    on nodes or events (no get, no event patch: the agent never updates
    an event's count)."""
    ds = shipped("DaemonSet", "nodetrustd")
    ns = ds["metadata"]["namespace"]
    sa = at(ds, *POD)["serviceAccountName"]
    subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    docs = [d for p in MANIFEST_FILES for _, d in load_objects(p)]

    def bindings_of(role):
        return [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
                and d["roleRef"]["name"] == role["metadata"]["name"]]

    status = shipped("ClusterRole", "nodetrust:nodetrustd-node-status")
    assert status["rules"] == NODE_STATUS_RULES
    (b,) = bindings_of(status)
    assert b["kind"] == "ClusterRoleBinding"
    assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": status["metadata"]["name"]}
    assert b["subjects"] == subjects

    events = shipped("ClusterRole", "nodetrust:nodetrustd-node-events")
    assert events["rules"] == NODE_EVENTS_RULES
    (b,) = bindings_of(events)
    assert b["kind"] == "RoleBinding" and b["metadata"]["namespace"] == EVENTS_NAMESPACE
    assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": events["metadata"]["name"]}
    assert b["subjects"] == subjects

    ours = {status["metadata"]["name"], events["metadata"]["name"]}
    for d in docs:
        if d["kind"] not in ("Role", "ClusterRole") or d["metadata"]["name"] in ours:
            continue
        for rule in d.get("rules", []):
            touched = {r.split("/")[0] for r in rule.get("resources", [])}
            assert not touched & {"nodes", "events", "*"}, (d["metadata"]["name"], rule)


def test_daemonsets_enable_node_status_for_their_node():
    """Both DaemonSets name the node from the downward API, turn node
    status on with the service account, and mount its token for that."""
    for where in (DEPLOY, OPENSHIFT):
        ds = shipped("DaemonSet", "nodetrustd", where)
        pod = at(ds, *POD)
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["NODE_NAME"] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        assert "--node-status-in-cluster" in c["args"], where
        # The directory source: node status is the only user of the token.
        assert any(a.startswith("--trust-source") for a in c["args"])
        assert not any(a.startswith(("--in-cluster", "--kubeconfig")) for a in c["args"])
        assert pod["automountServiceAccountToken"] is True, where
