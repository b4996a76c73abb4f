"""Protobuf request bodies: the few Kubernetes messages kubectl sends that way, decoded to JSON.

kubectl 1.32 and newer sends the built-in types it builds itself as protobuf
(``Content-Type: application/vnd.kubernetes.protobuf``): ``kubectl create namespace``, ``create job``
(also ``--from=cronjob/X``, which copies the CronJob's whole job template), ``create cronjob`` and the
``Eviction`` of ``kubectl drain``. It does not fall back to JSON on a 415 (tried with kubectl 1.37), so
the server decodes them. Everything else kubectl sends (``apply``, ``create -f``, patches, deletes) is
JSON.

The encoding (https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding): the
four bytes ``k8s\\x00``, then a ``runtime.Unknown`` message whose ``typeMeta`` names the kind and whose
``raw`` field holds the object's own message. Field numbers are the wire contract of
``k8s.io/api/{core,batch,policy}/v1/generated.proto`` and ``k8s.io/apimachinery/pkg/apis/meta/v1/
generated.proto`` (https://github.com/kubernetes/api, https://github.com/kubernetes/apimachinery);
:data:`_MESSAGES` lists those of the messages reachable from the kinds above that a step's manifest
can hold. A field outside it (a volume, a probe, a port …) is refused with 415 naming the field,
never dropped silently.

Go writes every non-pointer field, zero or not; its JSON leaves zero values out (``omitempty``). So
a zero scalar is dropped unless the Go field is a pointer (marked ``?``: ``backoffLimit: 0`` is
meaningful). Codes: ``s`` string, ``i`` integer, ``b`` bool, ``t`` Time, ``ms`` map of strings,
``mq`` map of quantities, ``-`` ignored (status), ``*`` repeated, ``^`` a message inlined into its
parent (``LocalObjectReference``), anything else a message name.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

from .status import ApiError

#: The media type kubectl sends; see the module docstring.
PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

_MESSAGES: dict[str, str] = {
    "Affinity": "1:nodeAffinity:NodeAffinity? 2:podAffinity:PodAffinity? 3:podAntiAffinity:PodAntiAffinity?",
    "AppArmorProfile": "1:type:s 2:localhostProfile:s?",
    "Capabilities": "1:add:*s 2:drop:*s",
    "ConfigMapEnvSource": "1:localObjectReference:^LocalObjectReference 2:optional:b?",
    "ConfigMapKeySelector": "1:localObjectReference:^LocalObjectReference 2:key:s 3:optional:b?",
    "Container": (
        "1:name:s 2:image:s 3:command:*s 4:args:*s 5:workingDir:s 19:envFrom:*EnvFromSource 7:env:*EnvVar "
        "8:resources:ResourceRequirements 24:restartPolicy:s? 13:terminationMessagePath:s "
        "20:terminationMessagePolicy:s 14:imagePullPolicy:s 15:securityContext:SecurityContext? "
        "16:stdin:b 17:stdinOnce:b 18:tty:b"
    ),
    "CronJob": "1:metadata:ObjectMeta 2:spec:CronJobSpec 3:status:-",
    "CronJobSpec": (
        "1:schedule:s 8:timeZone:s? 2:startingDeadlineSeconds:i? 3:concurrencyPolicy:s 4:suspend:b? "
        "5:jobTemplate:JobTemplateSpec 6:successfulJobsHistoryLimit:i? 7:failedJobsHistoryLimit:i?"
    ),
    "DeleteOptions": (
        "1:gracePeriodSeconds:i? 2:preconditions:Preconditions? 3:orphanDependents:b? "
        "4:propagationPolicy:s? 5:dryRun:*s 6:ignoreStoreReadErrorWithClusterBreakingPotential:b?"
    ),
    "EnvFromSource": "1:prefix:s 2:configMapRef:ConfigMapEnvSource? 3:secretRef:SecretEnvSource?",
    "EnvVar": "1:name:s 2:value:s 3:valueFrom:EnvVarSource?",
    "EnvVarSource": (
        "1:fieldRef:ObjectFieldSelector? 3:configMapKeyRef:ConfigMapKeySelector? 4:secretKeyRef:SecretKeySelector?"
    ),
    "EvictionResponder": "1:name:s 2:priority:i?",
    "Job": "1:metadata:ObjectMeta 2:spec:JobSpec 3:status:-",
    "JobSpec": (
        "1:parallelism:i? 2:completions:i? 3:activeDeadlineSeconds:i? "
        "11:podFailurePolicy:PodFailurePolicy? 7:backoffLimit:i? 12:backoffLimitPerIndex:i? "
        "13:maxFailedIndexes:i? 4:selector:LabelSelector? 5:manualSelector:b? 6:template:PodTemplateSpec "
        "8:ttlSecondsAfterFinished:i? 9:completionMode:s? 10:suspend:b? 14:podReplacementPolicy:s? "
        "15:managedBy:s?"
    ),
    "JobTemplateSpec": "1:metadata:ObjectMeta 2:spec:JobSpec",
    "LabelSelector": "1:matchLabels:ms 2:matchExpressions:*LabelSelectorRequirement",
    "LabelSelectorRequirement": "1:key:s 2:operator:s 3:values:*s",
    "LocalObjectReference": "1:name:s",
    "Namespace": "1:metadata:ObjectMeta 2:spec:NamespaceSpec 3:status:-",
    "NamespaceSpec": "1:finalizers:*s",
    "NodeAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:NodeSelector? "
        "2:preferredDuringSchedulingIgnoredDuringExecution:*PreferredSchedulingTerm"
    ),
    "NodeSelector": "1:nodeSelectorTerms:*NodeSelectorTerm",
    "NodeSelectorRequirement": "1:key:s 2:operator:s 3:values:*s",
    "NodeSelectorTerm": "1:matchExpressions:*NodeSelectorRequirement 2:matchFields:*NodeSelectorRequirement",
    "ObjectFieldSelector": "1:apiVersion:s 2:fieldPath:s",
    "ObjectMeta": (
        "1:name:s 2:generateName:s 3:namespace:s 4:selfLink:s 5:uid:s 6:resourceVersion:s 7:generation:i "
        "8:creationTimestamp:t 9:deletionTimestamp:t? 10:deletionGracePeriodSeconds:i? 11:labels:ms "
        "12:annotations:ms 13:ownerReferences:*OwnerReference 14:finalizers:*s"
    ),
    "OwnerReference": "5:apiVersion:s 1:kind:s 3:name:s 4:uid:s 6:controller:b? 7:blockOwnerDeletion:b?",
    "PodAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:*PodAffinityTerm "
        "2:preferredDuringSchedulingIgnoredDuringExecution:*WeightedPodAffinityTerm"
    ),
    "PodAffinityTerm": (
        "1:labelSelector:LabelSelector? 2:namespaces:*s 3:topologyKey:s "
        "4:namespaceSelector:LabelSelector? 5:matchLabelKeys:*s 6:mismatchLabelKeys:*s"
    ),
    "PodAntiAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:*PodAffinityTerm "
        "2:preferredDuringSchedulingIgnoredDuringExecution:*WeightedPodAffinityTerm"
    ),
    "PodFailurePolicy": "1:rules:*PodFailurePolicyRule",
    "PodFailurePolicyOnExitCodesRequirement": "1:containerName:s? 2:operator:s 3:values:*i",
    "PodFailurePolicyOnPodConditionsPattern": "1:type:s 2:status:s",
    "PodFailurePolicyRule": (
        "1:action:s 2:onExitCodes:PodFailurePolicyOnExitCodesRequirement? "
        "3:onPodConditions:*PodFailurePolicyOnPodConditionsPattern"
    ),
    "PodSchedulingGroup": "1:podGroupName:s?",
    "PodSecurityContext": (
        "1:seLinuxOptions:SELinuxOptions? 8:windowsOptions:WindowsSecurityContextOptions? 2:runAsUser:i? "
        "6:runAsGroup:i? 3:runAsNonRoot:b? 4:supplementalGroups:*i 12:supplementalGroupsPolicy:s? "
        "5:fsGroup:i? 7:sysctls:*Sysctl 9:fsGroupChangePolicy:s? 10:seccompProfile:SeccompProfile? "
        "11:appArmorProfile:AppArmorProfile? 13:seLinuxChangePolicy:s?"
    ),
    "PodSpec": (
        "20:initContainers:*Container 2:containers:*Container 3:restartPolicy:s "
        "4:terminationGracePeriodSeconds:i? 5:activeDeadlineSeconds:i? 6:dnsPolicy:s 7:nodeSelector:ms "
        "8:serviceAccountName:s 9:serviceAccount:s 21:automountServiceAccountToken:b? 10:nodeName:s "
        "11:hostNetwork:b 12:hostPID:b 13:hostIPC:b 27:shareProcessNamespace:b? "
        "14:securityContext:PodSecurityContext? 15:imagePullSecrets:*LocalObjectReference 16:hostname:s "
        "17:subdomain:s 18:affinity:Affinity? 19:schedulerName:s 22:tolerations:*Toleration "
        "24:priorityClassName:s 25:priority:i? 29:runtimeClassName:s? 30:enableServiceLinks:b? "
        "31:preemptionPolicy:s? 32:overhead:mq 35:setHostnameAsFQDN:b? 37:hostUsers:b? "
        "40:resources:ResourceRequirements? 41:hostnameOverride:s? 43:schedulingGroup:PodSchedulingGroup? "
        "44:evictionResponders:*EvictionResponder"
    ),
    "PodTemplateSpec": "1:metadata:ObjectMeta 2:spec:PodSpec",
    "Preconditions": "1:uid:s? 2:resourceVersion:s?",
    "PreferredSchedulingTerm": "1:weight:i 2:preference:NodeSelectorTerm",
    "ResourceRequirements": "1:limits:mq 2:requests:mq",
    "SELinuxOptions": "1:user:s 2:role:s 3:type:s 4:level:s",
    "SeccompProfile": "1:type:s 2:localhostProfile:s?",
    "SecretEnvSource": "1:localObjectReference:^LocalObjectReference 2:optional:b?",
    "SecretKeySelector": "1:localObjectReference:^LocalObjectReference 2:key:s 3:optional:b?",
    "SecurityContext": (
        "1:capabilities:Capabilities? 2:privileged:b? 3:seLinuxOptions:SELinuxOptions? "
        "10:windowsOptions:WindowsSecurityContextOptions? 4:runAsUser:i? 8:runAsGroup:i? "
        "5:runAsNonRoot:b? 6:readOnlyRootFilesystem:b? 7:allowPrivilegeEscalation:b? 9:procMount:s? "
        "11:seccompProfile:SeccompProfile? 12:appArmorProfile:AppArmorProfile?"
    ),
    "Sysctl": "1:name:s 2:value:s",
    "Toleration": "1:key:s 2:operator:s 3:value:s 4:effect:s 5:tolerationSeconds:i?",
    "WeightedPodAffinityTerm": "1:weight:i 2:podAffinityTerm:PodAffinityTerm",
    "WindowsSecurityContextOptions": (
        "1:gmsaCredentialSpecName:s? 2:gmsaCredentialSpec:s? 3:runAsUserName:s? 4:hostProcess:b?"
    ),
    "Eviction": "1:metadata:ObjectMeta 2:deleteOptions:DeleteOptions?",
}

#: (apiVersion, kind) of a top-level body → its message.
_ROOTS = {
    ("v1", "Namespace"): "Namespace",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("policy/v1", "Eviction"): "Eviction",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
    ("v1", "DeleteOptions"): "DeleteOptions",
}
_SCALARS = {"s", "i", "b", "t", "ms", "mq"}


@functools.cache
def _fields(message: str) -> dict[int, tuple[str, str, bool, bool]]:
    """number → (json name, type code, repeated, pointer) for ``message``."""
    out = {}
    for spec in _MESSAGES[message].split():
        number, name, code = spec.split(":")
        repeated, pointer = code.startswith("*"), code.endswith("?")
        out[int(number)] = (name, code.strip("*?"), repeated, pointer)
    return out


def _refuse(what: str) -> ApiError:
    return ApiError(
        415,
        f"the local cluster cannot decode this protobuf body ({what}); send it as JSON instead "
        "(kubectl apply -f / create -f, or --output=json | kubectl create -f -)",
        reason="UnsupportedMediaType",
    )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _refuse("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _wire(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field: an int for varints, bytes otherwise."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise _refuse(f"wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(code: str, wire: int, value: Any) -> Any:
    if code == "s":
        return bytes(value).decode()
    if code == "i":
        return _signed(value)
    if code == "b":
        return bool(value)
    if code == "t":
        parts = {n: v for n, _, v in _wire(value)}
        seconds = _signed(parts.get(1, 0))
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None
    entry = {n: v for n, _, v in _wire(value)}  # a map entry: key = 1, value = 2
    key = bytes(entry.get(1, b"")).decode()
    if code == "ms":
        return key, bytes(entry.get(2, b"")).decode()
    quantity = {n: v for n, _, v in _wire(entry.get(2, b""))}
    return key, bytes(quantity.get(1, b"")).decode()


def _message(message: str, data: bytes, path: str) -> dict[str, Any]:
    fields = _fields(message)
    out: dict[str, Any] = {}
    for number, wire, value in _wire(data):
        if number not in fields:
            raise _refuse(f"field {number} of {message} at {path or '.'} is not known to it")
        name, code, repeated, pointer = fields[number]
        where = f"{path}.{name}"
        if code == "-":  # status: the server ignores it on create
            continue
        if code.startswith("^"):
            out.update(_message(code[1:], value, path))
            continue
        if code in ("ms", "mq"):
            key, item = _scalar(code, wire, value)
            out.setdefault(name, {})[key] = item
            continue
        if code == "i" and repeated and wire == 2:  # packed repeated integers
            items, pos = [], 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                items.append(_signed(item))
            out.setdefault(name, []).extend(items)
            continue
        decoded = _scalar(code, wire, value) if code in _SCALARS else _message(code, value, where)
        if repeated:
            out.setdefault(name, []).append(decoded)
        elif decoded is None or (not pointer and code in _SCALARS and decoded in ("", 0, False)):
            continue
        else:
            out[name] = decoded
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; 415 for one this server cannot read."""
    if not body.startswith(_MAGIC):
        raise _refuse("no k8s protobuf envelope")
    envelope = {n: v for n, _, v in _wire(body[len(_MAGIC) :])}
    type_meta = {n: bytes(v).decode() for n, _, v in _wire(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    root = _ROOTS.get((api_version, kind))
    if root is None:
        raise _refuse(f"kind {api_version}/{kind}")
    obj = _message(root, envelope.get(2, b""), "")
    return {"apiVersion": api_version, "kind": kind, **obj}
