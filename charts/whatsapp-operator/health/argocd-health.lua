-- Argo CD custom health check for whatsapp-operator.io/WhatsAppChannel.
-- Install it under resource.customizations.health.whatsapp-operator.io_WhatsAppChannel in
-- argocd-cm (see the chart's README). It reads the status the operator writes: observedGeneration,
-- phase, the Ready / Reconciling / Stalled conditions (kstatus) and ReceiverHealthy (Twilio's
-- webhook requests to the receiver fail: Degraded, although Ready stays True by default).
local hs = {}

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the channel"
  return hs
end
local generation = (obj.metadata or {}).generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the latest spec"
  return hs
end

local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")
local reconciling = condition(status, "Reconciling")
local receiver = condition(status, "ReceiverHealthy")
local message = (ready and ready.message) or ""

if status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end
-- managementPolicy Observe with changes planned: waits for a person to switch it to Manage.
if status.phase == "Planned" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end
if (stalled ~= nil and stalled.status == "True")
    or status.phase == "Failed" or status.phase == "Conflict" or status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
if receiver ~= nil and receiver.status == "False" and status.phase ~= "Deleting" then
  hs.status = "Degraded"
  hs.message = "ReceiverHealthy: " .. (receiver.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message or message
  return hs
end
hs.status = "Progressing"
hs.message = message
return hs
