--- *exo.approvals* Answering the questions of turns waiting for approval.
---
--- Features:
--- - Each `approval/request` (from a turn this editor runs, or one it
---   watches) is asked once, through `vim.ui.select`: Allow, Allow for this
---   turn, Always allow, Deny; the answer goes to `approval/respond`.
--- - Questions are asked one at a time, in the order they came.
--- - `:Exo approvals` lists what waits (`approval/list`) and asks again,
---   for a question dismissed or one asked before this editor followed.
---
--- Key design ideas:
--- - A question reaches this editor twice when it runs the turn and also
---   watches its conversation (once for each role): it is keyed by
---   `turn/call_id` and asked once.
--- - Any client may answer and the first answer counts: a question answered
---   elsewhere is dropped from the queue when its decision is recorded.

local client = require('exo.client')
local config = require('exo.config')
local render = require('exo.render')

local M = {}

local choices = {
  { label = 'Allow', decision = 'allow_once' },
  { label = 'Allow for this turn', decision = 'allow_turn' },
  { label = 'Always allow', decision = 'allow_always' },
  { label = 'Deny', decision = 'deny' },
}

---@class exo.approvals.Entry
---@field request table
---@field state 'queued'|'asking'|'dismissed'|'answered'
---@field enqueued boolean? waiting in `queue` to be asked
---@field answered_elsewhere boolean? decided by another client while asked here

---@type table<string, exo.approvals.Entry>
local entries = {}
---@type string[]
local queue = {}
local asking = false

---@param request table
---@return string
local function key_of(request)
  return tostring(request.turn) .. '/' .. tostring(request.call_id)
end

---@param request table
---@param decision string
local function respond(request, decision)
  client.request('approval/respond', { turn = request.turn, call_id = request.call_id, decision = decision }, function(err)
    local entry = entries[key_of(request)]
    if entry then
      entry.state = 'answered'
    end
    if err then
      local code = err.data and err.data.code
      if code == 'not_found' then
        vim.notify('exo: that approval was already answered, or its turn ended', vim.log.levels.WARN)
      else
        vim.notify('exo: approval/respond: ' .. tostring(err.message), vim.log.levels.ERROR)
      end
    end
  end)
end

local ask_next

---@param key string
local function ask_one(key)
  local entry = entries[key]
  asking = true
  entry.state = 'asking'
  local request = entry.request
  local prompt = ('exo: the agent wants to %s'):format(render.describe_call(request.tool, request.arguments))
  if request.tool == 'write_file' and type(request.arguments) == 'table' and type(request.arguments.content) == 'string' then
    prompt = prompt .. (' (%d bytes)'):format(#request.arguments.content)
  end
  vim.ui.select(choices, {
    prompt = prompt,
    kind = 'exo.approval',
    format_item = function(choice)
      return choice.label
    end,
  }, function(choice)
    asking = false
    if not choice then
      entry.state = 'dismissed'
      vim.notify('exo: the turn still waits for an answer; :Exo approvals asks again', vim.log.levels.WARN)
    elseif entry.answered_elsewhere then
      entry.state = 'answered'
      vim.notify('exo: that approval was answered elsewhere meanwhile', vim.log.levels.WARN)
    else
      respond(request, choice.decision)
    end
    vim.schedule(ask_next)
  end)
end

ask_next = function()
  if asking then
    return
  end
  while #queue > 0 do
    local key = table.remove(queue, 1)
    local entry = entries[key]
    if entry and entry.state == 'queued' then
      return ask_one(key)
    end
  end
end

--- Asks about an `approval/request`, once however often it arrives.
---@param request table `{turn, call_id, tool, arguments}`
---@param again boolean? ask again about a question dismissed before
function M.ask(request, again)
  local key = key_of(request)
  local entry = entries[key]
  if entry then
    local settled = entry.state == 'asking' or entry.state == 'answered' or (entry.state == 'queued' and entry.enqueued)
    if not again or settled then
      return
    end
  end
  entry = { request = request, state = 'queued', enqueued = false }
  entries[key] = entry
  if not config.options.approvals and not again then
    -- Shown in the timeline; `:Exo approvals` asks.
    return
  end
  entry.enqueued = true
  table.insert(queue, key)
  -- Never inside the read loop: the default `vim.ui.select` waits for
  -- the user.
  vim.schedule(ask_next)
end

--- Drops a question answered elsewhere (its decision was recorded).
---@param key string `turn/call_id`
function M.forget(key)
  local entry = entries[key]
  if entry and entry.state == 'asking' then
    -- The picker is open; its answer will not be sent.
    entry.answered_elsewhere = true
  elseif entry then
    entry.state = 'answered'
  end
end

--- Asks about every question waiting in a conversation (or anywhere, when
--- `ctx` is nil), including those dismissed.
---@param ctx { agent: string, conversation: string }?
function M.ask_waiting(ctx)
  local params = ctx and { agent = ctx.agent, conversation = ctx.conversation } or nil
  client.request('approval/list', params, function(err, result)
    if err then
      return vim.notify('exo: approval/list: ' .. tostring(err.message), vim.log.levels.ERROR)
    end
    local approvals = result.approvals or {}
    if #approvals == 0 then
      return vim.notify('exo: no approval is waiting', vim.log.levels.INFO)
    end
    for _, request in ipairs(approvals) do
      M.ask(request, true)
    end
  end)
end

return M
