{{/* Names, labels and small pieces shared by the templates. */}}

{{- define "agentfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: the release name, plus the chart name unless it is in it. */}}
{{- define "agentfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<component>: agentfleet-operator, agentfleet-node-agent, agentfleet-api. */}}
{{- define "agentfleet.componentName" -}}
{{- printf "%s-%s" (include "agentfleet.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select a component's Pods: stable across upgrades (selectors are immutable). */}}
{{- define "agentfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-%s" (include "agentfleet.name" .root) .component | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* Every object: selector labels plus the recommended labels and commonLabels. */}}
{{- define "agentfleet.labels" -}}
{{ include "agentfleet.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: agentfleet
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "agentfleet.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* ServiceAccount name of a component: .sa is its serviceAccount values. */}}
{{- define "agentfleet.serviceAccountName" -}}
{{- if .sa.create }}
{{- default (include "agentfleet.componentName" .) .sa.name }}
{{- else }}
{{- required (printf "%s: serviceAccount.name is required when serviceAccount.create is false" .component) .sa.name }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount: also the subject of its RBAC bindings. */}}
{{- define "agentfleet.operator.serviceAccountName" -}}
{{- include "agentfleet.serviceAccountName" (dict "root" . "component" "operator" "sa" .Values.serviceAccount) }}
{{- end }}

{{/*
The operator's PolicyRules from files/rbac.yaml. Argument: dict "root" $ "scope" S, where S is
"namespaced" (core and the enabled optional groups), "cluster" (clusterScoped rules whose
`requires` group is enabled) or "all" (both). Emits a YAML list (or "[]").
*/}}
{{- define "agentfleet.operator.rules" -}}
{{- $rbac := .root.Files.Get "files/rbac.yaml" | fromYaml }}
{{- $toggles := .root.Values.rbac }}
{{- $rules := list }}
{{- if ne .scope "cluster" }}
{{- $rules = concat $rules $rbac.core }}
{{- range $group := list "keda" "istio" "gatewayApi" "multicluster" "placement" }}
{{- if index $toggles $group }}
{{- $rules = concat $rules (index $rbac $group) }}
{{- end }}
{{- end }}
{{- end }}
{{- if ne .scope "namespaced" }}
{{- range $rule := $rbac.clusterScoped }}
{{- if or (not (hasKey $rule "requires")) (index $toggles $rule.requires) }}
{{- $rules = append $rules (omit $rule "requires") }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* The operator's command-line flags, in the order `agentfleet run --help` lists them. */}}
{{- define "agentfleet.operator.args" -}}
{{- $op := .Values.operator }}
{{- $args := list "run" }}
{{- range .Values.watchNamespaces }}
{{- $args = append $args (printf "--namespace=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--workers=%d" (int $op.workers)) }}
{{- $args = append $args (printf "--metrics-address=%s" $op.metricsAddress) }}
{{- $args = append $args (printf "--metrics-port=%d" (int $op.metricsPort)) }}
{{- $args = append $args (printf "--health-port=%d" (int $op.healthPort)) }}
{{- $args = append $args (printf "--cluster-domain=%s" $op.clusterDomain) }}
{{- with $op.agentSelector }}
{{- $args = append $args (printf "--agent-selector=%s" .) }}
{{- end }}
{{- with $op.shardId }}
{{- $args = append $args (printf "--shard-id=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--prometheus-address=%s" .Values.autoscaling.prometheusAddress) }}
{{- if .Values.autoscaling.defaults }}
{{- $args = append $args "--autoscaling-defaults=/etc/agentfleet/autoscaling-defaults.yaml" }}
{{- end }}
{{- $mesh := .Values.mesh }}
{{- $args = append $args (printf "--mesh-mode=%s" $mesh.mode) }}
{{- $args = append $args (printf "--mesh-trust-domain=%s" $mesh.trustDomain) }}
{{- range $mesh.metricsNamespaces }}
{{- $args = append $args (printf "--mesh-metrics-namespace=%s" .) }}
{{- end }}
{{- if not $mesh.defaultDeny }}
{{- $args = append $args "--no-mesh-default-deny" }}
{{- end }}
{{- if $mesh.trafficDefaults }}
{{- $args = append $args "--traffic-defaults=/etc/agentfleet/traffic/traffic-defaults.yaml" }}
{{- end }}
{{- with $mesh.tracingProvider }}
{{- $args = append $args (printf "--mesh-tracing-provider=%s" .) }}
{{- end }}
{{- $tracing := .Values.tracing }}
{{- with $tracing.agentEndpoint }}
{{- $args = append $args (printf "--agent-tracing-endpoint=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--agent-tracing-sampling-percent=%v" $tracing.agentSamplingPercent) }}
{{- with $tracing.operatorEndpoint }}
{{- $args = append $args (printf "--tracing-endpoint=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--tracing-sampling-percent=%v" $tracing.operatorSamplingPercent) }}
{{- $placement := .Values.placement }}
{{- if not $placement.enabled }}
{{- $args = append $args "--no-placement" }}
{{- end }}
{{- $args = append $args (printf "--placement-policy=%s" $placement.policy) }}
{{- $args = append $args (printf "--node-failure-seconds=%d" (int $placement.nodeFailureSeconds)) }}
{{- $args = append $args (printf "--log-format=%s" $op.logFormat) }}
{{- $args = append $args (printf "--log-level=%s" $op.logLevel) }}
{{- if $op.verbose }}
{{- $args = append $args "--verbose" }}
{{- end }}
{{- toYaml (concat $args $op.extraArgs) }}
{{- end }}
