# The Kubernetes API source (agent/kubeconfig.c) reads kubeconfig files,
# which kubectl writes as YAML, with libyaml (Debian: libyaml-dev).
# To the lead: fold "yaml-0.1" into PKGS in the Makefile and drop this file.
PKGS += yaml-0.1
