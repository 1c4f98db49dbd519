{{/* Chart name, truncated to a DNS label. */}}
{{- define "provgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: the prefix of every object the chart creates. */}}
{{- define "provgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "provgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "provgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "provgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "provgate.labels" -}}
helm.sh/chart: {{ include "provgate.chart" . }}
{{ include "provgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: provgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "provgate.serviceAccountName" -}}
{{- default (include "provgate.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The Secret holding tls.crt / tls.key (and ca.crt when the chart or cert-manager makes it). */}}
{{- define "provgate.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required with tls.mode=secret" .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "provgate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* DNS names the API server may use for the webhook Service. */}}
{{- define "provgate.dnsNames" -}}
{{- $svc := include "provgate.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{/* The container image: digest wins over tag. */}}
{{- define "provgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The provgate config file: .Values.config merged with the fields the chart
manages (listen addresses, TLS files, contract directories, credentials,
trusted roots, gate and report sections).
*/}}
{{- define "provgate.config" -}}
{{- $cfg := deepCopy (default (dict) .Values.config) -}}
{{- $server := deepCopy (default (dict) (get $cfg "server")) -}}
{{- $_ := set $server "listen" (printf "%s:%d" .Values.listenHost (int .Values.ports.https)) -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $server "metricsListen" (printf "%s:%d" .Values.listenHost (int .Values.ports.metrics)) -}}
{{- else -}}
{{- $_ := unset $server "metricsListen" -}}
{{- end -}}
{{- $_ := set $server "tls" (dict "certFile" "/etc/provgate/tls/tls.crt" "keyFile" "/etc/provgate/tls/tls.key") -}}
{{- $_ := set $cfg "server" $server -}}
{{- /* Contract directories. */ -}}
{{- if or .Values.contracts .Values.existingContractConfigMaps -}}
{{- $contracts := deepCopy (default (dict) (get $cfg "contracts")) -}}
{{- $dirs := default (list) (get $contracts "dirs") -}}
{{- $_ := set $contracts "dirs" (append $dirs "/etc/provgate/contracts") -}}
{{- $_ := set $cfg "contracts" $contracts -}}
{{- end -}}
{{- /* Registry credentials. */ -}}
{{- if .Values.registryCredentials -}}
{{- $creds := default (list) (get $cfg "credentials") -}}
{{- range .Values.registryCredentials -}}
{{- $c := dict "name" .name "file" (printf "/etc/provgate/credentials/%s/.dockerconfigjson" .name) -}}
{{- if .namespaces -}}{{- $_ := set $c "namespaces" .namespaces -}}{{- end -}}
{{- $creds = append $creds $c -}}
{{- end -}}
{{- $_ := set $cfg "credentials" $creds -}}
{{- end -}}
{{- /* Trusted roots. */ -}}
{{- if or .Values.trustedRoots.inline .Values.trustedRoots.existingConfigMap.name -}}
{{- $trust := deepCopy (default (dict) (get $cfg "trust")) -}}
{{- $roots := default (list) (get $trust "roots") -}}
{{- range $name, $_ := .Values.trustedRoots.inline -}}
{{- $roots = append $roots (dict "name" $name "path" (printf "/etc/provgate/roots/inline/%s.json" $name)) -}}
{{- end -}}
{{- range .Values.trustedRoots.existingConfigMap.roots -}}
{{- $roots = append $roots (dict "name" . "path" (printf "/etc/provgate/roots/existing/%s.json" .)) -}}
{{- end -}}
{{- $_ := set $trust "roots" $roots -}}
{{- $_ := set $cfg "trust" $trust -}}
{{- end -}}
{{- /* CI gate: passed through. */ -}}
{{- if .Values.gate -}}
{{- $_ := set $cfg "gate" .Values.gate -}}
{{- end -}}
{{- /* Reporting. */ -}}
{{- if and .Values.report.policyReports (not .Values.report.continuous.enabled) -}}
{{- fail "report.policyReports needs report.continuous.enabled: true (the server writes PolicyReports from its continuous report)" -}}
{{- end -}}
{{- $report := dict "continuous" (dict "enabled" .Values.report.continuous.enabled "interval" .Values.report.continuous.interval "concurrency" (int .Values.report.continuous.concurrency)) -}}
{{- if .Values.report.teamLabel -}}{{- $_ := set $report "teamLabel" .Values.report.teamLabel -}}{{- end -}}
{{- /* The report judges exactly the namespaces the webhooks see: the same selector, from the same template. */ -}}
{{- $_ := set $report "namespaceSelector" (include "provgate.namespaceSelector" . | fromYaml) -}}
{{- if .Values.report.policyReports -}}{{- $_ := set $report "policyReports" true -}}{{- end -}}
{{- /* One replica runs the report: the holder of the Lease the Role in rbac.yaml names. */ -}}
{{- $le := .Values.report.leaderElection -}}
{{- $_ := set $report "leaderElection" (dict "enabled" $le.enabled "leaseName" (include "provgate.leaseName" .) "namespace" .Release.Namespace "leaseDuration" $le.leaseDuration "renewDeadline" $le.renewDeadline "retryPeriod" $le.retryPeriod) -}}
{{- $_ := set $cfg "report" $report -}}
{{- /* The shared evidence tier (Redis). */ -}}
{{- with .Values.sharedCache -}}
{{- if .enabled -}}
{{- if not .url -}}{{- fail "sharedCache.enabled needs sharedCache.url (redis://HOST:6379, or rediss://HOST:6380 for TLS)" -}}{{- end -}}
{{- if and .username (not .passwordSecret.name) -}}{{- fail "sharedCache.username needs sharedCache.passwordSecret.name" -}}{{- end -}}
{{- if and .tls.caSecret (not (hasPrefix "rediss://" .url)) -}}{{- fail "sharedCache.tls.caSecret needs a rediss:// url" -}}{{- end -}}
{{- $shared := deepCopy (default (dict) .extra) -}}
{{- $_ := set $shared "url" .url -}}
{{- $_ := set $shared "keyPrefix" .keyPrefix -}}
{{- $_ := set $shared "timeout" .timeout -}}
{{- if .passwordSecret.name -}}
{{- $auth := dict "passwordFile" (printf "/etc/provgate/redis/auth/%s" .passwordSecret.key) -}}
{{- if .username -}}{{- $_ := set $auth "username" .username -}}{{- end -}}
{{- $_ := set $shared "auth" $auth -}}
{{- end -}}
{{- if .tls.caSecret -}}
{{- $_ := set $shared "tls" (dict "caFile" (printf "/etc/provgate/redis/ca/%s" .tls.caKey)) -}}
{{- end -}}
{{- $caches := deepCopy (default (dict) (get $cfg "caches")) -}}
{{- $_ := set $caches "shared" $shared -}}
{{- $_ := set $cfg "caches" $caches -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The namespaceSelector shared by both webhook configurations. */}}
{{- define "provgate.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml (concat (list .Release.Namespace "kube-system") .Values.webhook.excludeNamespaces | uniq) | nindent 6 }}
  {{- if .Values.webhook.namespaceOptOut.enabled }}
  # BYPASS RISK: anyone who can label this namespace turns enforcement off in it.
  - key: {{ .Values.webhook.namespaceOptOut.key | quote }}
    operator: NotIn
    values: [{{ .Values.webhook.namespaceOptOut.value | quote }}]
  {{- end }}
{{- end -}}

{{/* The admission rules shared by both webhook configurations. */}}
{{- define "provgate.rules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "replicationcontrollers"]
  scope: Namespaced
# Ephemeral containers (kubectl debug) are added through this subresource,
# by PATCH/PUT, which admission sees as UPDATE. CREATE is listed too so any
# create-style write to the subresource is covered as well.
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods/ephemeralcontainers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end -}}

{{/* The TCP port of sharedCache.url (6379 when it names none). */}}
{{- define "provgate.redisPort" -}}
{{- $host := (urlParse .Values.sharedCache.url).host -}}
{{- if regexMatch ":[0-9]+$" $host -}}{{ regexFind "[0-9]+$" $host }}{{- else -}}6379{{- end -}}
{{- end -}}

{{/* The Lease the continuous report's replicas elect their leader on. */}}
{{- define "provgate.leaseName" -}}
{{ include "provgate.fullname" . }}-report
{{- end -}}
