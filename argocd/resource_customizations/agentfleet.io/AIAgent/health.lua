-- Health of an agentfleet.io AIAgent, read from what its operator writes: status.observedGeneration
-- and the kstatus-style conditions Ready, Reconciling and Stalled (metav1.Condition), plus
-- optional feature conditions such as ScalerReady and MeshReady.
--   Progressing  being deleted; no status yet; status older than the spec; Reconciling=True;
--                or no decision yet (Ready not True and nothing Stalled)
--   Degraded     Stalled=True: only a person can fix it (the message says what)
--   Suspended    Ready=True with reason ScaledToZero while autoscaling is off: spec.replicas is 0
--                on purpose; an autoscaler's zero is Healthy (idle, it wakes on demand)
--   Healthy      Ready=True for the current generation
local hs = {}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion"
  if obj.metadata.finalizers ~= nil and #obj.metadata.finalizers > 0 then
    hs.message = "Pending deletion; blocked by finalizers: " .. table.concat(obj.metadata.finalizers, ", ")
  end
  return hs
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentfleet operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentfleet operator to observe generation " .. generation
  return hs
end

local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  if condition.type ~= nil then
    conditions[condition.type] = condition
  end
end

local function text(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return condition.type .. "=" .. condition.status
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled)
  return hs
end

local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = text(reconciling)
  return hs
end

local ready = conditions["Ready"]
if ready == nil or ready.status ~= "True" then
  hs.status = "Progressing"
  if ready ~= nil then
    hs.message = text(ready)
  else
    hs.message = "Waiting for the Ready condition"
  end
  return hs
end

-- Ready: say which requested features are not in place yet (e.g. ScalerReady=False).
local notes = {}
for _, condition in ipairs(obj.status.conditions) do
  local kind = condition.type
  if kind ~= "Ready" and kind ~= "Reconciling" and kind ~= "Stalled" and condition.status == "False" then
    table.insert(notes, kind .. "=False (" .. (condition.reason or "") .. "): " .. (condition.message or ""))
  end
end

local autoscaling = obj.spec ~= nil and obj.spec.autoscaling ~= nil and obj.spec.autoscaling.enabled ~= false
if ready.reason == "ScaledToZero" and not autoscaling then
  hs.status = "Suspended"
  hs.message = "Scaled to zero: spec.replicas is 0"
else
  hs.status = "Healthy"
  hs.message = text(ready)
end
if #notes > 0 then
  hs.message = hs.message .. "; " .. table.concat(notes, "; ")
end
return hs
