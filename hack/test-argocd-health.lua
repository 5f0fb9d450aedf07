-- Runs the chart's Argo CD health check against sample WhatsAppChannel statuses.
-- Usage: lua5.4 hack/test-argocd-health.lua charts/whatsapp-operator/health/argocd-health.lua
local script = assert(arg[1], "the health check's path")
local check = assert(loadfile(script, "t", setmetatable({}, { __index = _G })))

local function run(o)
  local env = setmetatable({ obj = o }, { __index = _G })
  local fn = assert(loadfile(script, "t", env))
  return fn()
end

local function cond(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message or (type_ .. " " .. status) }
end

local function channel(generation, status)
  return { metadata = { name = "sales", generation = generation }, status = status }
end

local cases = {
  { "no status yet", channel(1, nil), "Progressing" },
  { "status of an older generation", channel(2, { observedGeneration = 1, phase = "Ready",
      conditions = { cond("Ready", "True", "ChannelReady") } }), "Progressing" },
  { "ready", channel(1, { observedGeneration = 1, phase = "Ready",
      conditions = { cond("Ready", "True", "ChannelReady", "Connected and active") } }), "Healthy" },
  { "inactive is ready", channel(1, { observedGeneration = 1, phase = "Inactive",
      conditions = { cond("Ready", "True", "ChannelReady") } }), "Healthy" },
  { "pending", channel(1, { observedGeneration = 1, phase = "Pending",
      conditions = { cond("Ready", "False", "NotConnected"), cond("Reconciling", "True", "NotConnected") } }), "Progressing" },
  { "waiting for a sender", channel(1, { observedGeneration = 1, phase = "Waiting",
      conditions = { cond("Ready", "False", "SenderNotReady"), cond("Reconciling", "True", "SenderNotReady") } }), "Progressing" },
  { "failed", channel(1, { observedGeneration = 1, phase = "Failed",
      conditions = { cond("Ready", "False", "InvalidCredentials", "Twilio refused the credentials"),
                     cond("Stalled", "True", "InvalidCredentials") } }), "Degraded" },
  { "conflict", channel(1, { observedGeneration = 1, phase = "Conflict",
      conditions = { cond("Ready", "False", "NumberInUse"), cond("Stalled", "True", "NumberInUse") } }), "Degraded" },
  { "degraded", channel(1, { observedGeneration = 1, phase = "Degraded",
      conditions = { cond("Ready", "False", "TwilioUnavailable"), cond("Reconciling", "True", "TwilioUnavailable") } }), "Degraded" },
  { "suspended", channel(1, { observedGeneration = 1, phase = "Suspended",
      conditions = { cond("Ready", "False", "Suspended") } }), "Suspended" },
  { "observed, changes planned", channel(1, { observedGeneration = 1, phase = "Planned",
      conditions = { cond("Ready", "False", "ChangesPlanned") } }), "Suspended" },
  { "ready, receiver failing", channel(1, { observedGeneration = 1, phase = "Ready",
      conditions = { cond("Ready", "True", "ChannelReady"),
                     cond("ReceiverHealthy", "False", "WebhookFailing", "3 failed Twilio webhook request(s)") } }), "Degraded" },
  { "ready, receiver healthy", channel(1, { observedGeneration = 1, phase = "Ready",
      conditions = { cond("Ready", "True", "ChannelReady"), cond("ReceiverHealthy", "True", "ReceiverHealthy") } }), "Healthy" },
  { "ready, alerts unreadable", channel(1, { observedGeneration = 1, phase = "Ready",
      conditions = { cond("Ready", "True", "ChannelReady"), cond("ReceiverHealthy", "Unknown", "AlertsUnreadable") } }), "Healthy" },
  { "deleting", channel(1, { observedGeneration = 1, phase = "Deleting",
      conditions = { cond("Ready", "False", "Deleting") } }), "Progressing" },
}

assert(check ~= nil)
local failed = 0
for _, c in ipairs(cases) do
  local name, o, want = c[1], c[2], c[3]
  local hs = run(o)
  if hs.status ~= want then
    failed = failed + 1
    print(string.format("FAIL %s: %s, want %s", name, tostring(hs.status), want))
  else
    print(string.format("ok   %s: %s (%s)", name, hs.status, hs.message or ""))
  end
end
if failed > 0 then
  os.exit(1)
end
print(string.format("all %d health cases pass", #cases))
