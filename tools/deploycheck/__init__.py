"""``make deploy-check``: run every Job and Deployment of a rendered overlay as its manifest says.

The overlay is rendered with ``kubectl kustomize``; its Secrets come from the checked-in
example (``deploy/k8s/examples/secrets.yaml``) with generated passwords, keys and
certificates. Each container then runs under podman exactly as its pod spec asks —
command, env and envFrom, user and groups, read-only root, dropped capabilities, memory,
volumes — against a real nats-server (TLS, the generated users), PostgreSQL (TLS,
``verify-full``), an OTLP receiver standing in for the collector and a LiveKit stand-in
the voice worker registers with. The provisioning Job runs first and must exit 0 (the
services only check that its streams exist). The check waits until every service reports ready,
plays one scripted call through all of them, checks that the call is one trace, and
stops each container with its grace period, requiring exit code 0.
"""
