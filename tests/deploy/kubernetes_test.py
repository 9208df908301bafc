#!/usr/bin/env python3
"""Checks the Kubernetes manifests of the split mode for consistency.

Parses every YAML file in the manifests folder (multi-document) and checks
that the objects fit together the way the cluster needs them to: names,
ports and labels that match across objects, ConfigMaps and keys that exist,
the proxy's discover name and port pointing at the workers' headless Service
and through it at the worker pool's listen port, scrape annotations naming
the metrics port of the embedded configuration, and the embedded scgi.toml
and proxy.toml passing `--check` of our own binaries. A cluster would only
tell at run time (a pod that never becomes ready, a proxy with no
backends); this tells at build time, with the object and field at fault.

With --serve it runs those configurations instead: scgi-manager and
scgi-proxy on loopback ports, the headless Service's name answered by
dnsmasq, requests sent through the proxy to the sample app.

Usage: kubernetes_test.py MANIFESTS_DIR --manager SCGI_MANAGER --proxy SCGI_PROXY
           [--serve [--dnsmasq DNSMASQ] [--examples deploy/examples/workers]]
Exit 0 when every check passes, 1 otherwise (each failure on its own line).
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

CLUSTER_DOMAIN = "svc.cluster.local"
# Kinds that live outside any namespace.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition"}
WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]"}
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


class Failures:
    """Collects failures so that one run reports them all."""

    def __init__(self):
        self.messages = []
        self.checks = 0

    def check(self, condition, message):
        self.checks += 1
        if not condition:
            self.messages.append(message)
        return condition


class Obj:
    """One Kubernetes object and the file it came from."""

    def __init__(self, document, file_name, index):
        self.doc = document
        self.file = file_name
        self.index = index

    @property
    def kind(self):
        return self.doc.get("kind")

    @property
    def name(self):
        return (self.doc.get("metadata") or {}).get("name")

    @property
    def namespace(self):
        return (self.doc.get("metadata") or {}).get("namespace")

    def where(self, field=""):
        place = "%s: %s/%s" % (self.file, self.kind or "?", self.name or "#%d" % self.index)
        return place + (" " + field if field else "")


def parse_duration(text):
    """Seconds in a duration of our configuration ("250ms", "20s", "1h30m")."""
    if not isinstance(text, str) or not text or DURATION_PART.sub("", text):
        raise ValueError("not a duration: %r" % (text,))
    return sum(float(number) * DURATION_UNIT_SECONDS[unit]
               for number, unit in DURATION_PART.findall(text))


SIZE_UNITS = {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
              "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def parse_size(text):
    """Bytes in a size of our configuration ("512MiB") or a Kubernetes quantity ("1Gi")."""
    match = re.fullmatch(r"(\d+)(KiB|MiB|GiB|TiB|Ki|Mi|Gi|Ti|)", str(text))
    if not match:
        raise ValueError("not a size: %r" % (text,))
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def split_host_port(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


def load_manifests(folder, failures):
    objects = []
    kustomization = None
    files = sorted(name for name in os.listdir(folder) if name.endswith((".yaml", ".yml")))
    for file_name in files:
        with open(os.path.join(folder, file_name), encoding="utf-8") as stream:
            try:
                documents = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
            except yaml.YAMLError as error:
                failures.check(False, "%s: not valid YAML: %s" % (file_name, error))
                continue
        if file_name in ("kustomization.yaml", "kustomization.yml"):
            kustomization = (file_name, documents[0] if documents else {})
            continue
        for index, doc in enumerate(documents):
            if not failures.check(isinstance(doc, dict),
                                  "%s: document #%d is not a mapping" % (file_name, index)):
                continue
            objects.append(Obj(doc, file_name, index))
    return files, objects, kustomization


def check_identity(objects, failures):
    """apiVersion, kind and metadata.name everywhere; one namespace for the rest."""
    for obj in objects:
        for field, value in (("apiVersion", obj.doc.get("apiVersion")), ("kind", obj.kind),
                             ("metadata.name", obj.name)):
            failures.check(isinstance(value, str) and value != "",
                           "%s: %s is missing or empty" % (obj.where(), field))
    namespaces = [obj for obj in objects if obj.kind == "Namespace"]
    if not failures.check(len(namespaces) == 1,
                          "the manifests must hold exactly one Namespace, not %d"
                          % len(namespaces)):
        return None
    namespace = namespaces[0].name
    for obj in objects:
        if obj.kind in CLUSTER_SCOPED:
            failures.check(obj.namespace is None,
                           "%s: metadata.namespace is set on a cluster-scoped kind"
                           % obj.where())
        else:
            failures.check(obj.namespace == namespace,
                           "%s: metadata.namespace is %r, not the Namespace %r of namespace.yaml"
                           % (obj.where(), obj.namespace, namespace))
    seen = {}
    for obj in objects:
        key = (obj.kind, obj.namespace, obj.name)
        failures.check(key not in seen, "%s: metadata.name is used twice for a %s (also in %s)"
                       % (obj.where(), obj.kind, seen.get(key)))
        seen.setdefault(key, obj.file)
    return namespace


def check_kustomization(files, kustomization, failures):
    if not failures.check(kustomization is not None, "kustomization.yaml is missing"):
        return
    file_name, doc = kustomization
    resources = doc.get("resources") or []
    listed = [entry for entry in resources if isinstance(entry, str)]
    failures.check(len(listed) == len(set(listed)),
                   "%s: resources lists a file twice: %s" % (file_name, listed))
    present = set(files) - {file_name}
    failures.check(set(listed) == present,
                   "%s: resources must list exactly the manifests present; listed but missing: "
                   "%s; present but not listed: %s"
                   % (file_name, sorted(set(listed) - present) or "none",
                      sorted(present - set(listed)) or "none"))


def pod_template_labels(deployment):
    template = (deployment.doc.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def pod_spec(deployment):
    return ((deployment.doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_deployment_selectors(deployments, failures):
    for deployment in deployments:
        selector = (deployment.doc.get("spec") or {}).get("selector") or {}
        match_labels = selector.get("matchLabels") or {}
        failures.check(bool(match_labels),
                       "%s: spec.selector.matchLabels is empty" % deployment.where())
        failures.check(selects(match_labels, pod_template_labels(deployment)),
                       "%s: spec.selector.matchLabels %s does not match "
                       "spec.template.metadata.labels %s"
                       % (deployment.where(), match_labels, pod_template_labels(deployment)))


def container_port(container, port):
    """The containerPort that a port reference (name or number) means, or None."""
    for entry in container.get("ports") or []:
        if isinstance(port, str) and entry.get("name") == port:
            return entry.get("containerPort")
        if isinstance(port, int) and entry.get("containerPort") == port:
            return port
    return None


def pod_port(spec, port):
    for container in spec.get("containers") or []:
        number = container_port(container, port)
        if number is not None:
            return number
    return None


def check_services(services, deployments, failures):
    """Each Service selects one Deployment's pods, on ports those pods open.

    Returns {service name: (service, deployment)} for the Services that do."""
    selected = {}
    for service in services:
        spec = service.doc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not failures.check(bool(selector), "%s: spec.selector is empty" % service.where()):
            continue
        matches = [deployment for deployment in deployments
                   if deployment.namespace == service.namespace
                   and selects(selector, pod_template_labels(deployment))]
        if not failures.check(len(matches) == 1,
                              "%s: spec.selector %s matches the pod template labels of %d "
                              "Deployments (%s), not exactly one"
                              % (service.where(), selector, len(matches),
                                 ", ".join(d.name for d in matches) or "none")):
            continue
        deployment = matches[0]
        selected[service.name] = (service, deployment)
        ports = spec.get("ports") or []
        failures.check(bool(ports), "%s: spec.ports is empty" % service.where())
        for index, port in enumerate(ports):
            target = port.get("targetPort", port.get("port"))
            failures.check(pod_port(pod_spec(deployment), target) is not None,
                           "%s: spec.ports[%d].targetPort %r is no containerPort of the pods "
                           "of Deployment/%s" % (service.where(), index, target, deployment.name))
    return selected


def check_volumes(deployments, config_maps, failures):
    for deployment in deployments:
        spec = pod_spec(deployment)
        volumes = {volume.get("name"): volume for volume in spec.get("volumes") or []}
        for name, volume in volumes.items():
            source = volume.get("configMap")
            if source is None:
                continue
            field = "spec.template.spec.volumes[%s].configMap" % name
            config_map = config_maps.get((deployment.namespace, source.get("name")))
            if not failures.check(config_map is not None,
                                  "%s: %s.name %r names no ConfigMap in namespace %r"
                                  % (deployment.where(), field, source.get("name"),
                                     deployment.namespace)):
                continue
            data = config_map.doc.get("data") or {}
            for item in source.get("items") or []:
                failures.check(item.get("key") in data,
                               "%s: %s.items key %r is not in ConfigMap/%s (keys: %s)"
                               % (deployment.where(), field, item.get("key"), config_map.name,
                                  sorted(data)))
        for container in spec.get("containers") or []:
            for mount in container.get("volumeMounts") or []:
                failures.check(mount.get("name") in volumes,
                               "%s: container %s volumeMounts %r names no volume of the pod"
                               % (deployment.where(), container.get("name"), mount.get("name")))


def check_probes(deployments, failures):
    for deployment in deployments:
        for container in pod_spec(deployment).get("containers") or []:
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(probe_name)
                if probe is None:
                    continue
                for action in ("tcpSocket", "httpGet", "grpc"):
                    if action not in probe:
                        continue
                    port = probe[action].get("port")
                    failures.check(container_port(container, port) is not None,
                                   "%s: container %s %s.%s.port %r is none of its ports"
                                   % (deployment.where(), container.get("name"), probe_name,
                                      action, port))
            for probe_name in ("readinessProbe", "livenessProbe"):
                failures.check(probe_name in container,
                               "%s: container %s has no %s"
                               % (deployment.where(), container.get("name"), probe_name))


def mounted_file(deployment, container, path, config_maps):
    """The ConfigMap text of a file at `path` in the container, or None."""
    volumes = {volume.get("name"): volume for volume in pod_spec(deployment).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        mount_path = mount.get("mountPath", "").rstrip("/")
        if mount.get("subPath") and path == mount_path:
            relative = mount["subPath"]  # one key mounted as a file
        elif path.startswith(mount_path + "/"):
            relative = path[len(mount_path) + 1:]
            if mount.get("subPath"):
                relative = mount["subPath"] + "/" + relative
        else:
            continue
        source = (volumes.get(mount.get("name")) or {}).get("configMap")
        if source is None:
            return None
        config_map = config_maps.get((deployment.namespace, source.get("name")))
        if config_map is None:
            return None
        items = source.get("items")
        key = relative if items is None else next(
            (item.get("key") for item in items if item.get("path") == relative), None)
        return (config_map.doc.get("data") or {}).get(key)
    return None


def writable_folders(deployment, container):
    """mountPaths of the container's emptyDir volumes."""
    volumes = {volume.get("name"): volume for volume in pod_spec(deployment).get("volumes") or []}
    return [mount.get("mountPath", "").rstrip("/") for mount in container.get("volumeMounts") or []
            if "emptyDir" in (volumes.get(mount.get("name")) or {})]


def empty_dir_limits(deployment, container):
    """{mountPath: sizeLimit in bytes, or None} of the container's emptyDir volumes."""
    volumes = {volume.get("name"): volume for volume in pod_spec(deployment).get("volumes") or []}
    limits = {}
    for mount in container.get("volumeMounts") or []:
        source = (volumes.get(mount.get("name")) or {}).get("emptyDir")
        if source is not None:
            limit = source.get("sizeLimit")
            limits[mount.get("mountPath", "").rstrip("/")] = None if limit is None else parse_size(limit)
    return limits


def is_under(path, folders):
    return any(path.startswith(folder + "/") or path == folder for folder in folders)


class Daemon:
    """One container that runs scgi-manager or scgi-proxy, with its configuration."""

    def __init__(self, deployment, container, program, config_path, config_text):
        self.deployment = deployment
        self.container = container
        self.program = program  # "scgi-manager" or "scgi-proxy"
        self.config_path = config_path
        self.config_text = config_text
        self.config = None

    def where(self, field=""):
        return self.deployment.where(
            "container %s%s" % (self.container.get("name"), " " + field if field else ""))


def find_daemons(deployments, config_maps, failures):
    daemons = []
    for deployment in deployments:
        for container in pod_spec(deployment).get("containers") or []:
            argv = (container.get("command") or []) + (container.get("args") or [])
            program = os.path.basename(argv[0]) if argv else ""
            if program not in ("scgi-manager", "scgi-proxy"):
                continue
            where = deployment.where("container %s command" % container.get("name"))
            if not failures.check("--config" in argv[:-1],
                                  "%s: %s runs without --config FILE" % (where, program)):
                continue
            config_path = argv[argv.index("--config") + 1]
            text = mounted_file(deployment, container, config_path, config_maps)
            if not failures.check(text is not None,
                                  "%s: --config %s is no key of a ConfigMap mounted in the "
                                  "container" % (where, config_path)):
                continue
            daemon = Daemon(deployment, container, program, config_path, text)
            try:
                daemon.config = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                failures.check(False, "%s: %s is not valid TOML: %s" % (where, config_path, error))
                continue
            daemons.append(daemon)
    return daemons


def check_daemon(daemon, failures):
    """Ports, scrape annotations, writable folders and shutdown timing of one daemon."""
    config = daemon.config
    metrics_listen = (config.get("metrics") or {}).get("listen", "127.0.0.1:9100")
    annotations = ((daemon.deployment.doc["spec"]["template"].get("metadata") or {})
                   .get("annotations") or {})
    field = "spec.template.metadata.annotations"
    failures.check(annotations.get("prometheus.io/scrape") == "true",
                   "%s: %s prometheus.io/scrape is %r, not \"true\""
                   % (daemon.deployment.where(), field, annotations.get("prometheus.io/scrape")))
    failures.check(annotations.get("prometheus.io/path") == "/metrics",
                   "%s: %s prometheus.io/path is %r, not \"/metrics\""
                   % (daemon.deployment.where(), field, annotations.get("prometheus.io/path")))
    if failures.check(bool(metrics_listen), "%s: [metrics] listen is off in %s, so nothing "
                      "can be scraped" % (daemon.where(), daemon.config_path)):
        host, port = split_host_port(metrics_listen)
        failures.check(annotations.get("prometheus.io/port") == str(port),
                       "%s: %s prometheus.io/port is %r, but [metrics] listen in %s is %s"
                       % (daemon.deployment.where(), field,
                          annotations.get("prometheus.io/port"), daemon.config_path,
                          metrics_listen))
        failures.check(host in WILDCARD_HOSTS,
                       "%s: [metrics] listen %s in %s is not reachable from outside the pod; "
                       "listen on 0.0.0.0" % (daemon.where(), metrics_listen, daemon.config_path))
        failures.check(container_port(daemon.container, port) is not None,
                       "%s: ports has no containerPort %d for [metrics] listen of %s"
                       % (daemon.where(), port, daemon.config_path))
    for pool in config.get("pool") or []:
        if not pool.get("listen"):
            continue
        host, port = split_host_port(pool["listen"])
        failures.check(host in WILDCARD_HOSTS,
                       "%s: pool %r listen %s in %s is not reachable on the pod IP; listen on "
                       "0.0.0.0" % (daemon.where(), pool.get("name"), pool["listen"],
                                    daemon.config_path))
        failures.check(container_port(daemon.container, port) is not None,
                       "%s: ports has no containerPort %d for pool %r listen of %s"
                       % (daemon.where(), port, pool.get("name"), daemon.config_path))

    security = daemon.container.get("securityContext") or {}
    pod_security = pod_spec(daemon.deployment).get("securityContext") or {}
    failures.check(security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True,
                   "%s: securityContext.runAsNonRoot is not true" % daemon.where())
    if security.get("readOnlyRootFilesystem") and daemon.program == "scgi-manager":
        writable = writable_folders(daemon.deployment, daemon.container)
        env = {entry.get("name"): entry.get("value") for entry in daemon.container.get("env") or []}
        runtime = env.get("RUNTIME_DIRECTORY")
        failures.check(runtime is not None and is_under(runtime, writable),
                       "%s: env RUNTIME_DIRECTORY is %r: with readOnlyRootFilesystem the "
                       "manager's socket folder must be on an emptyDir mount (%s)"
                       % (daemon.where(), runtime, writable))
        control_socket = (config.get("manager") or {}).get("control_socket",
                                                           "/run/scgi/scgi.sock")
        failures.check(is_under(os.path.dirname(control_socket), writable),
                       "%s: [manager] control_socket %s in %s is not on an emptyDir mount (%s)"
                       % (daemon.where(), control_socket, daemon.config_path, writable))

    # Responses past response_buffer wait in spill_dir: with a read-only root
    # it must be an emptyDir, whose sizeLimit holds spill_limit (the kubelet
    # evicts a pod whose emptyDir outgrows its limit).
    if security.get("readOnlyRootFilesystem"):
        proxy_section = config.get("proxy") or {}
        spill_dir = proxy_section.get("spill_dir", "/var/tmp").rstrip("/")
        spill_limit = parse_size(proxy_section.get("spill_limit", "4GiB"))
        limits = empty_dir_limits(daemon.deployment, daemon.container)
        folder = next((f for f in limits if is_under(spill_dir, [f])), None)
        failures.check(folder is not None,
                       "%s: [proxy] spill_dir %s in %s is not on an emptyDir mount (%s): the "
                       "root filesystem is read-only" % (daemon.where(), spill_dir,
                                                         daemon.config_path, sorted(limits)))
        if folder is not None:
            failures.check(limits[folder] is not None and limits[folder] > spill_limit,
                           "%s: [proxy] spill_limit (%d bytes) in %s does not fit below the "
                           "sizeLimit of the emptyDir at %s (%s)"
                           % (daemon.where(), spill_limit, daemon.config_path, folder,
                              limits[folder]))

    # The pod must outlive the preStop pause plus the daemon's own shutdown,
    # or the kubelet kills requests in flight.
    section = "manager" if daemon.program == "scgi-manager" else "proxy"
    needed = parse_duration((config.get(section) or {}).get("shutdown_timeout", "30s"))
    if daemon.program == "scgi-manager":
        needed += max((parse_duration(pool.get("stop_timeout", "10s"))
                       for pool in config.get("pool") or [] if "command" in pool), default=0)
    pre_stop = ((daemon.container.get("lifecycle") or {}).get("preStop") or {})
    command = (pre_stop.get("exec") or {}).get("command") or []
    if "sleep" in pre_stop:
        needed += float(pre_stop["sleep"].get("seconds", 0))
    elif len(command) == 2 and os.path.basename(command[0]) == "sleep":
        needed += float(command[1])
    grace = pod_spec(daemon.deployment).get("terminationGracePeriodSeconds", 30)
    failures.check(grace > needed,
                   "%s: spec.template.spec.terminationGracePeriodSeconds %s is not above the "
                   "preStop pause + shutdown (%gs) of %s"
                   % (daemon.deployment.where(), grace, needed, daemon.config_path))


def check_discovery(daemons, selected, namespace, failures):
    """The proxy's discover name and port lead to the worker pool's listen port.

    Returns the links that do: (proxy, its pool, manager, the worker pool)."""
    links = []
    managers = {daemon.deployment.name: daemon for daemon in daemons
                if daemon.program == "scgi-manager"}
    proxies = [daemon for daemon in daemons if daemon.program == "scgi-proxy"]
    failures.check(bool(proxies) and bool(managers),
                   "the manifests must run scgi-proxy and scgi-manager (found %d and %d)"
                   % (len(proxies), len(managers)))
    for proxy in proxies:
        for pool in proxy.config.get("pool") or []:
            where = "%s: pool %r discover" % (proxy.where(), pool.get("name"))
            if not failures.check("discover" in pool, "%s: pool %r in %s does not discover its "
                                  "backends" % (proxy.where(), pool.get("name"),
                                                proxy.config_path)):
                continue
            match = re.fullmatch(r"dns:(.+):(\d+)", pool["discover"])
            if not failures.check(match is not None, "%s %r is not dns:NAME:PORT"
                                  % (where, pool["discover"])):
                continue
            name, port = match.group(1), int(match.group(2))
            service_name, _, rest = name.partition(".")
            failures.check(rest == "%s.%s" % (namespace, CLUSTER_DOMAIN),
                           "%s name %s is not <service>.%s.%s" % (where, name, namespace,
                                                                  CLUSTER_DOMAIN))
            if not failures.check(service_name in selected,
                                  "%s name %s names no Service that selects pods (%s)"
                                  % (where, name, sorted(selected) or "none")):
                continue
            service, workers = selected[service_name]
            spec = service.doc.get("spec") or {}
            failures.check(spec.get("clusterIP") == "None",
                           "%s: spec.clusterIP is %r: the Service that %s discovers must be "
                           "headless (None), or DNS answers with one virtual IP"
                           % (service.where(), spec.get("clusterIP"), proxy.deployment.name))
            failures.check(spec.get("publishNotReadyAddresses", False) is False,
                           "%s: spec.publishNotReadyAddresses must be false: the proxies would "
                           "send requests to pods that are not ready" % service.where())
            ports = [entry for entry in spec.get("ports") or [] if entry.get("port") == port]
            if not failures.check(len(ports) == 1, "%s port %d is no spec.ports[].port of %s"
                                  % (where, port, service.where())):
                continue
            target = ports[0].get("targetPort", port)
            target_number = pod_port(pod_spec(workers), target)
            # A headless Service translates no port: the proxies connect to
            # POD_IP:PORT, so PORT itself must be the pods' port.
            failures.check(target_number == port,
                           "%s: spec.ports[].targetPort %r is containerPort %s of "
                           "Deployment/%s, not the discovered port %d (a headless Service "
                           "translates no port)" % (service.where(), target, target_number,
                                                    workers.name, port))
            manager = managers.get(workers.name)
            if not failures.check(manager is not None, "%s: Deployment/%s, selected by %s, "
                                  "runs no scgi-manager whose --config could be read"
                                  % (where, workers.name, service.where())):
                continue
            worker_pools = [entry for entry in manager.config.get("pool") or []
                            if entry.get("listen")
                            and split_host_port(entry["listen"])[1] == port]
            if not failures.check(len(worker_pools) == 1,
                                  "%s port %d is no pool listen port of %s in %s"
                                  % (where, port, manager.where(), manager.config_path)):
                continue
            worker_pool = worker_pools[0]
            links.append((proxy, pool, manager, worker_pool))
            # The proxy counts one backend per pod: its concurrency is what
            # one pod serves at once, or requests wait needlessly (too low)
            # or in one pod's queue while another pod idles (too high).
            capacity = worker_pool.get("workers", 4) * worker_pool.get("concurrency", 1)
            if "max_workers" in worker_pool:
                capacity = worker_pool["max_workers"] * worker_pool.get("concurrency", 1)
            failures.check(pool.get("concurrency", 1) == capacity,
                           "%s: pool %r concurrency %s in %s is not what one worker pod serves "
                           "at once (pool %r of %s: workers x concurrency = %d)"
                           % (proxy.where(), pool.get("name"), pool.get("concurrency", 1),
                              proxy.config_path, worker_pool.get("name"), manager.config_path,
                              capacity))
    return links


def run_config_checks(daemons, binaries, failures):
    """The embedded configurations pass --check of the binary that reads them."""
    with tempfile.TemporaryDirectory(prefix="k8s-config-") as folder:
        for index, daemon in enumerate(daemons):
            path = os.path.join(folder, "%d-%s" % (index, os.path.basename(daemon.config_path)))
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(daemon.config_text)
            # --check reads the file only: it needs neither the worker's
            # command nor /run/scgi to exist on this machine.
            result = subprocess.run([binaries[daemon.program], "--check", "--config", path],
                                    capture_output=True, text=True, timeout=30, check=False)
            failures.check(result.returncode == 0,
                           "%s: %s --check rejects %s (exit %d):\n%s"
                           % (daemon.where(), daemon.program, daemon.config_path,
                              result.returncode, (result.stdout + result.stderr).strip()))


def check_kustomize_build(folder, objects, failures):
    """When kubectl is at hand, its kustomize renders exactly the objects read here."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("note: no kubectl on this machine; kustomize build not tried")
        return
    result = subprocess.run([kubectl, "kustomize", folder], capture_output=True, text=True,
                            timeout=60, check=False)
    if not failures.check(result.returncode == 0, "kubectl kustomize %s failed:\n%s"
                          % (folder, result.stderr.strip())):
        return
    rendered = sorted((doc.get("kind"), (doc.get("metadata") or {}).get("name"))
                      for doc in yaml.safe_load_all(result.stdout) if doc)
    expected = sorted((obj.kind, obj.name) for obj in objects)
    failures.check(rendered == expected, "kubectl kustomize renders %s, the files hold %s"
                   % (rendered, expected))


# --- --serve: the embedded configurations run together on loopback ---------

EXAMPLES_IN_IMAGE = "/usr/share/scgi-balancer/examples"


def free_ports(count):
    """Ports in 20000-32000 that nothing listens on now."""
    ports = []
    candidates = list(range(20000, 32000))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports in 20000-32000")


def quoted_replace(text, old, new, failures, what):
    """Replaces the TOML string "old" by "new"; failing when it is not there once."""
    if not failures.check(text.count('"%s"' % old) == 1,
                          "cannot find %s \"%s\" once in the configuration" % (what, old)):
        return text
    return text.replace('"%s"' % old, '"%s"' % new)


class Pod:
    """One daemon of the manifests run here: its files, its environment, its process."""

    def __init__(self, daemon, folder):
        self.daemon = daemon
        self.folder = folder
        self.process = None
        self.log_path = os.path.join(folder, "log")
        os.makedirs(folder)
        # Each emptyDir of the pod becomes a folder of its own here.
        self.folders = {}
        for mount_path in writable_folders(daemon.deployment, daemon.container):
            local = os.path.join(folder, mount_path.strip("/").replace("/", "_"))
            os.makedirs(local)
            self.folders[mount_path] = local

    def local_path(self, text):
        for mount_path, local in self.folders.items():
            text = text.replace(mount_path + "/", local + "/")
            if text == mount_path:
                text = local
        return text

    def environment(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for entry in self.daemon.container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = self.local_path(str(entry["value"]))
        return env

    def start(self, binary, config_text):
        config_path = os.path.join(self.folder, os.path.basename(self.daemon.config_path))
        with open(config_path, "w", encoding="utf-8") as stream:
            stream.write(config_text)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([binary, "--config", config_path], cwd=self.folder,
                                            env=self.environment(), stdout=log,
                                            stderr=subprocess.STDOUT)

    def log_tail(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                return "".join(stream.readlines()[-15:])
        except OSError:
            return ""


def fetch(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError):
        return None, ""


def scgi_get(port, uri):
    """Status line and body of one SCGI GET to 127.0.0.1:port."""
    pairs = [("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("REQUEST_METHOD", "GET"),
             ("REQUEST_URI", uri), ("QUERY_STRING", ""), ("SERVER_PROTOCOL", "HTTP/1.1")]
    header = b"".join(name.encode() + b"\0" + value.encode() + b"\0" for name, value in pairs)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"%d:%s," % (len(header), header))
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    return head.split("\r\n")[0], body


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def serve(link, binaries, dnsmasq, examples, failures):
    """Runs the proxy and the manager of `link` on loopback with their embedded
    configurations, the addresses moved to free loopback ports and the
    discover name answered by dnsmasq, and sends requests through both."""
    proxy, proxy_pool, manager, worker_pool = link
    pool_port, manager_metrics, proxy_port, proxy_metrics, dns_port = free_ports(5)
    name = re.fullmatch(r"dns:(.+):(\d+)", proxy_pool["discover"]).group(1)
    processes = []
    with tempfile.TemporaryDirectory(prefix="k8s-serve-") as folder:
        workers = Pod(manager, os.path.join(folder, "workers"))
        proxies = Pod(proxy, os.path.join(folder, "proxy"))
        try:
            text = manager.config_text
            text = quoted_replace(text, worker_pool["listen"], "127.0.0.1:%d" % pool_port,
                                  failures, "the worker pool's listen")
            text = quoted_replace(text, manager.config.get("metrics", {}).get("listen", ""),
                                  "127.0.0.1:%d" % manager_metrics, failures,
                                  "the manager's [metrics] listen")
            text = workers.local_path(text).replace(EXAMPLES_IN_IMAGE, examples)
            proxy_text = proxy.config_text
            proxy_text = quoted_replace(proxy_text, proxy_pool["listen"],
                                        "127.0.0.1:%d" % proxy_port, failures,
                                        "the proxy pool's listen")
            proxy_metrics_listen = proxy.config.get("metrics", {}).get("listen", "")
            proxy_text = quoted_replace(proxy_text, proxy_metrics_listen,
                                        "127.0.0.1:%d" % proxy_metrics, failures,
                                        "the proxy's [metrics] listen")
            failures.check("resolver" not in proxy_pool,
                           "%s: pool %r sets resolver; this test needs the pod's default"
                           % (proxy.where(), proxy_pool.get("name")))
            proxy_text = quoted_replace(proxy_text, proxy_pool["discover"],
                                        "dns:%s:%d\"\nresolver = \"127.0.0.1:%d"
                                        % (name, pool_port, dns_port), failures,
                                        "the proxy pool's discover")
            if failures.messages:
                return

            # The cluster DNS as the proxy sees it: the headless Service's
            # name answers with the one worker "pod", here 127.0.0.1.
            domain = name.split(".", 1)[1]
            dns = subprocess.Popen(
                [dnsmasq, "--no-daemon", "--port=%d" % dns_port, "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
                 "--local=/%s/" % domain, "--host-record=%s,127.0.0.1" % name],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(dns)
            workers.start(binaries["scgi-manager"], text)
            processes.append(workers.process)
            proxies.start(binaries["scgi-proxy"], proxy_text)
            processes.append(proxies.process)

            backend_up = 'scgi_backend_up{backend="127.0.0.1:%d",pool="%s"} 1' % (
                pool_port, proxy_pool["name"])
            found = wait_for(lambda: backend_up in fetch(
                "http://127.0.0.1:%d/metrics" % proxy_metrics)[1] or any(
                    pod.process.poll() is not None for pod in (workers, proxies)), 20)
            for pod in (workers, proxies):
                failures.check(pod.process.poll() is None,
                               "%s: %s --config %s exited with %s at start; its log:\n%s"
                               % (pod.daemon.where(), pod.daemon.program, pod.daemon.config_path,
                                  pod.process.poll(), pod.log_tail()))
            if failures.messages or not failures.check(
                    found and backend_up in fetch(
                        "http://127.0.0.1:%d/metrics" % proxy_metrics)[1],
                    "%s: within 20s the proxy did not find the worker pod through %s "
                    "(no %s in its /metrics); its log:\n%s"
                    % (proxy.where(), proxy_pool["discover"], backend_up, proxies.log_tail())):
                return
            # Sequential requests; the first that fails ends the round (each
            # may wait out queue_timeout).
            for index in range(20):
                try:
                    status, body = scgi_get(proxy_port, "/k8s/%d" % index)
                except OSError as error:
                    status, body = "no answer: %s" % error, ""
                if not failures.check(status == "Status: 200 OK" and "hello from" in body,
                                      "request %d through the proxy got %r %r, not the app's "
                                      "200; proxy log:\n%s\nmanager log:\n%s"
                                      % (index, status, body[:200], proxies.log_tail(),
                                         workers.log_tail())):
                    break
            status, _ = fetch("http://127.0.0.1:%d/metrics" % manager_metrics)
            failures.check(status == 200, "%s: the liveness probe's /metrics did not answer 200"
                           % manager.where())
            runtime = workers.local_path(workers.environment().get("RUNTIME_DIRECTORY", ""))
            failures.check(os.path.isdir(runtime) and any(
                entry.startswith("scgi-manager.") for entry in os.listdir(runtime)),
                "%s: the manager made no runtime folder in RUNTIME_DIRECTORY (%s)"
                % (manager.where(), runtime))

            # SIGTERM, as the kubelet sends after preStop: both finish in time.
            for pod in (proxies, workers):
                grace = pod_spec(pod.daemon.deployment).get("terminationGracePeriodSeconds", 30)
                pod.process.send_signal(signal.SIGTERM)
                try:
                    code = pod.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    code = None
                failures.check(code == 0, "%s: after SIGTERM, %s ended with %s within %ss, not "
                               "exit 0; its log:\n%s" % (pod.daemon.where(), pod.daemon.program,
                                                         code, grace, pod.log_tail()))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", help="folder of the manifests (deploy/kubernetes)")
    parser.add_argument("--manager", required=True, help="the scgi-manager binary")
    parser.add_argument("--proxy", required=True, help="the scgi-proxy binary")
    parser.add_argument("--serve", action="store_true",
                        help="instead of the checks of the files: run the embedded "
                             "configurations together on loopback and send requests through")
    parser.add_argument("--dnsmasq", default="dnsmasq", help="with --serve: dnsmasq to use")
    parser.add_argument("--examples", help="with --serve: the folder that stands in for %s "
                        "of the image (deploy/examples/workers)" % EXAMPLES_IN_IMAGE)
    args = parser.parse_args()
    binaries = {"scgi-manager": os.path.abspath(args.manager),
                "scgi-proxy": os.path.abspath(args.proxy)}

    failures = Failures()
    files, objects, kustomization = load_manifests(args.manifests, failures)
    namespace = check_identity(objects, failures)
    check_kustomization(files, kustomization, failures)
    deployments = [obj for obj in objects if obj.kind == "Deployment"]
    services = [obj for obj in objects if obj.kind == "Service"]
    config_maps = {(obj.namespace, obj.name): obj for obj in objects if obj.kind == "ConfigMap"}
    check_deployment_selectors(deployments, failures)
    selected = check_services(services, deployments, failures)
    check_volumes(deployments, config_maps, failures)
    check_probes(deployments, failures)
    daemons = find_daemons(deployments, config_maps, failures)
    for daemon in daemons:
        check_daemon(daemon, failures)
    links = check_discovery(daemons, selected, namespace, failures)
    if args.serve:
        # The checks of the files are the other test's: only what running needs counts here.
        failures = Failures()
        if failures.check(bool(links), "no scgi-proxy pool discovers an scgi-manager pool; "
                          "run without --serve to see why"):
            serve(links[0], binaries, args.dnsmasq,
                  os.path.abspath(args.examples or "deploy/examples/workers"), failures)
    else:
        run_config_checks(daemons, binaries, failures)
        check_kustomize_build(args.manifests, objects, failures)

    for message in failures.messages:
        print("FAIL " + message)
    print("%d objects in %d files, %d checks:" % (len(objects), len(files), failures.checks))
    print("%d passed, %d failed" % (failures.checks - len(failures.messages),
                                    len(failures.messages)))
    return 1 if failures.messages else 0


if __name__ == "__main__":
    sys.exit(main())
