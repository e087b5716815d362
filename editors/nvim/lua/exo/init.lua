--- *exo* Neovim client for exo: follow, drive and time-travel agent conversations.
---
--- Features:
--- - `:Exo conversations` picks the current conversation; `:Exo open`
---   shows its timeline, updated live.
--- - `:Exo send {text}` runs a turn (`turn/run`, with approvals asked in
---   this editor) and streams it into the timeline; `:Exo cancel` stops it.
--- - `:Exo rewind`, `:Exo redo` and `:Exo fork` move through the history,
---   refusing to lose unsaved or unsnapshotted work.
--- - `:Exo diff` shows what a turn did to a file, in diff mode.
---
--- Key design ideas:
--- - All state lives in exo: the plugin holds a view (which conversation is
---   current, which timelines are open) and nothing that closing the editor
---   could lose. Two editors following one conversation see the same
---   events, deltas and approval questions.
--- - Nothing waits: every request answers through a callback on the main
---   loop. Functions here take an optional `callback(err, result)` so that
---   scripts (and the tests) can chain them.

local client = require('exo.client')
local config = require('exo.config')
local render = require('exo.render')
local timeline = require('exo.timeline')
local travel = require('exo.travel')

local M = {}

---@class exo.Context
---@field agent string agent id
---@field conversation string conversation id
---@field agent_slug string
---@field slug string
---@field name string?
---@field workspace string?

--- The current conversation of this editor.
---@type exo.Context?
M.current = nil

---@param message string
---@param level integer?
local function notify(message, level)
  vim.notify('exo: ' .. message, level or vim.log.levels.INFO)
end

---@param callback function?
---@return fun(err: string?, ...)
local function or_report(callback)
  return callback or function(err)
    if err then
      notify(err, vim.log.levels.ERROR)
    end
  end
end

-- ---------------------------------------------------------------------------
-- Setup
-- ---------------------------------------------------------------------------

--- Configures the plugin; see |exo-config|. Calling it is optional.
---@param opts table?
function M.setup(opts)
  config.setup(opts)
  render.define_highlights()
end

--- Closes every timeline and the connection (a `--stdio` daemon this
--- editor started shuts down; a detached one runs on).
function M.shutdown()
  timeline.close_all()
  client.disconnect()
  M._completion_cache = nil
end

-- ---------------------------------------------------------------------------
-- The current conversation
-- ---------------------------------------------------------------------------

---@param conv table a conversation record
---@param agent_slug string
---@return exo.Context
local function context_of(conv, agent_slug)
  return {
    agent = conv.agent,
    conversation = conv.id,
    agent_slug = agent_slug,
    slug = conv.slug,
    name = conv.name,
    workspace = conv.workspace,
  }
end

---@param tl exo.Timeline
---@return exo.Context
local function context_of_timeline(tl)
  return {
    agent = tl.agent,
    conversation = tl.conversation,
    agent_slug = tl.agent_slug,
    slug = tl.slug,
    name = tl.name,
    workspace = tl.workspace,
  }
end

--- Looks a conversation up by `AGENT/CONVERSATION` (slugs or ids).
---@param target string
---@param callback fun(err: string?, ctx: exo.Context?)
function M.lookup(target, callback)
  local agent, conversation = target:match('^([^/]+)/(.+)$')
  if not agent then
    return callback('expected AGENT/CONVERSATION, got ' .. target)
  end
  client.request('agent/get', { agent = agent }, function(agent_err, agent_record)
    if agent_err then
      return callback(agent_err.message)
    end
    client.request('conversation/get', { agent = agent, conversation = conversation }, function(err, conv)
      if err then
        return callback(err.message)
      end
      callback(nil, context_of(conv, agent_record.slug))
    end)
  end)
end

--- Every live conversation of every agent, for the picker and completion.
---@param callback fun(err: string?, items: { agent: table, conversation: table }[]?)
function M.list_conversations(callback)
  client.request('agent/list', nil, function(err, result)
    if err then
      return callback(err.message)
    end
    local agents = result.agents or {}
    local items, remaining, failure = {}, #agents, nil
    if remaining == 0 then
      return callback(nil, {})
    end
    local per_agent = {}
    for i, agent in ipairs(agents) do
      client.request('conversation/list', { agent = agent.id }, function(list_err, list)
        if list_err then
          failure = failure or list_err.message
        else
          per_agent[i] = list.conversations or {}
        end
        remaining = remaining - 1
        if remaining == 0 then
          if failure then
            return callback(failure)
          end
          for j, each in ipairs(agents) do
            for _, conv in ipairs(per_agent[j] or {}) do
              table.insert(items, { agent = each, conversation = conv })
            end
          end
          M._completion_cache = vim.tbl_map(function(item)
            return item.agent.slug .. '/' .. item.conversation.slug
          end, items)
          callback(nil, items)
        end
      end)
    end
  end)
end

--- Makes a conversation current (and remembers it for the next commands).
---@param ctx exo.Context
function M.use(ctx)
  M.current = ctx
end

--- Picks the current conversation with `vim.ui.select`, then opens its
--- timeline.
---@param callback fun(err: string?, ctx: exo.Context?)?
function M.pick(callback)
  callback = or_report(callback)
  M.list_conversations(function(err, items)
    if err then
      return callback(err)
    end
    if #items == 0 then
      return callback('no conversation yet: create one with `exo conversation create AGENT NAME --workspace DIR`')
    end
    vim.ui.select(items, {
      prompt = 'exo: conversation',
      kind = 'exo.conversation',
      format_item = function(item)
        local conv = item.conversation
        local marker = (M.current and M.current.conversation == conv.id) and '* ' or '  '
        return ('%s%s/%s  %s%s'):format(marker, item.agent.slug, conv.slug, conv.name,
          conv.workspace and ('  ' .. conv.workspace) or '')
      end,
    }, function(item)
      if not item then
        return callback('no conversation picked')
      end
      local ctx = context_of(item.conversation, item.agent.slug)
      M.use(ctx)
      M.open_context(ctx)
      callback(nil, ctx)
    end)
  end)
end

--- Runs `fn(ctx)` with the conversation to act on: the timeline in the
--- current window, else the current conversation, else one picked now.
---@param fn fun(ctx: exo.Context)
---@param callback fun(err: string?)
local function with_context(fn, callback)
  local tl = timeline.for_buf()
  if tl then
    return fn(context_of_timeline(tl))
  end
  if M.current then
    return fn(M.current)
  end
  M.pick(function(err, ctx)
    if err then
      return callback(err)
    end
    fn(ctx)
  end)
end

-- ---------------------------------------------------------------------------
-- Timelines
-- ---------------------------------------------------------------------------

--- Shows the conversation's timeline: focuses a window that shows it, or
--- opens one (`timeline.open` in the config).
---@param ctx exo.Context
---@return exo.Timeline
function M.open_context(ctx)
  local tl = timeline.for_conversation(ctx.conversation)
  if tl and vim.api.nvim_buf_is_valid(tl.buf) then
    local wins = vim.fn.win_findbuf(tl.buf)
    local tab_wins = vim.api.nvim_tabpage_list_wins(0)
    for _, win in ipairs(wins) do
      if vim.tbl_contains(tab_wins, win) then
        vim.api.nvim_set_current_win(win)
        return tl
      end
    end
  end
  local open = config.options.timeline.open
  if open and open ~= '' and not timeline.for_buf() then
    vim.cmd(open)
  end
  if not tl then
    tl = timeline.attach({
      id = ctx.conversation,
      agent = ctx.agent,
      slug = ctx.slug,
      name = ctx.name,
      workspace = ctx.workspace,
    }, ctx.agent_slug)
  end
  vim.api.nvim_win_set_buf(0, tl.buf)
  local width = config.options.timeline.width
  if width and open and open:find('vsplit') then
    vim.api.nvim_win_set_width(0, width)
  end
  return tl
end

--- Opens a conversation's timeline: `target` is `AGENT/CONVERSATION`, or
--- nil for the current one (picked when there is none).
---@param target string?
---@param callback fun(err: string?, timeline: exo.Timeline?)?
function M.open(target, callback)
  callback = or_report(callback)
  if target and target ~= '' then
    return M.lookup(target, function(err, ctx)
      if err then
        return callback(err)
      end
      M.use(ctx)
      callback(nil, M.open_context(ctx))
    end)
  end
  with_context(function(ctx)
    M.use(ctx)
    callback(nil, M.open_context(ctx))
  end, callback)
end

--- `BufReadCmd` of `exo://AGENT/CONVERSATION`: makes the buffer that
--- conversation's timeline (sessions and `:edit` restore timelines).
---@param buf integer
---@param name string
function M.read_buffer(buf, name)
  local target = name:match('^exo://(.+)$')
  if not target or target:match('^snapshot/') then
    return
  end
  M.lookup(target, function(err, ctx)
    if err then
      return notify(name .. ': ' .. err, vim.log.levels.ERROR)
    end
    if vim.api.nvim_buf_is_valid(buf) then
      timeline.attach({
        id = ctx.conversation,
        agent = ctx.agent,
        slug = ctx.slug,
        name = ctx.name,
        workspace = ctx.workspace,
      }, ctx.agent_slug, buf)
    end
  end)
end

-- ---------------------------------------------------------------------------
-- Turns
-- ---------------------------------------------------------------------------

--- The timeline of `ctx`, opened when it is not, shown in a window.
---@param ctx exo.Context
---@return exo.Timeline
local function shown_timeline(ctx)
  local tl = timeline.for_conversation(ctx.conversation)
  if tl and vim.api.nvim_buf_is_valid(tl.buf) and #vim.fn.win_findbuf(tl.buf) > 0 then
    return tl
  end
  local win = vim.api.nvim_get_current_win()
  tl = M.open_context(ctx)
  if vim.api.nvim_win_is_valid(win) then
    vim.api.nvim_set_current_win(win)
  end
  return tl
end

--- Runs a turn with the agent's harness (`turn/run`), streaming it into the
--- timeline; approvals are asked here.
---@param opts { text: string?, ctx: exo.Context? }
---@param callback fun(err: string?, result: table?)?
function M.send(opts, callback)
  callback = or_report(callback)
  local function run(ctx, text)
    local tl = shown_timeline(ctx)
    tl:when_watching(function()
      local params = {
        agent = ctx.agent,
        conversation = ctx.conversation,
        input = text,
        approvals = true,
        max_rounds = config.options.max_rounds,
      }
      client.request('turn/run', params, function(err, result)
        if err then
          local hint = err.data and err.data.code == 'busy' and ' (:Exo cancel stops the running turn)' or ''
          return callback('send: ' .. tostring(err.message) .. hint)
        end
        if result.status ~= 'completed' then
          local why = result.error and result.error ~= vim.NIL and tostring(result.error) or ''
          notify(('turn %s%s'):format(result.status, why ~= '' and (': ' .. why) or ''), vim.log.levels.WARN)
        end
        callback(nil, result)
      end)
    end)
  end
  local function with_text(ctx)
    if opts.text and opts.text ~= '' then
      return run(ctx, opts.text)
    end
    vim.ui.input({ prompt = ('exo %s/%s> '):format(ctx.agent_slug, ctx.slug) }, function(text)
      if text and text ~= '' then
        run(ctx, text)
      end
    end)
  end
  if opts.ctx then
    return with_text(opts.ctx)
  end
  with_context(with_text, callback)
end

--- Cancels the turn running in the conversation.
---@param callback fun(err: string?)?
function M.cancel(callback)
  callback = or_report(callback)
  with_context(function(ctx)
    client.request('conversation/get', { agent = ctx.agent, conversation = ctx.conversation }, function(err, conv)
      if err then
        return callback(err.message)
      end
      if not conv.open_turn then
        notify('no turn is running in ' .. ctx.agent_slug .. '/' .. ctx.slug)
        return callback(nil)
      end
      client.request('turn/cancel', { turn = conv.open_turn }, function(cancel_err)
        if cancel_err then
          return callback('cancel: ' .. tostring(cancel_err.message))
        end
        notify('cancelling turn ' .. render.short(conv.open_turn))
        callback(nil)
      end)
    end)
  end, callback)
end

--- Asks about the approvals the conversation's turns wait for.
function M.approvals()
  with_context(function(ctx)
    require('exo.approvals').ask_waiting(ctx)
  end, or_report(nil))
end

--- Snapshots the workspace now (`snapshot/take`), so that a rewind can
--- bring these files back.
---@param callback fun(err: string?, result: table?)?
function M.snapshot(callback)
  callback = or_report(callback)
  with_context(function(ctx)
    client.request('snapshot/take', { agent = ctx.agent, conversation = ctx.conversation }, function(err, result)
      if err then
        return callback('snapshot: ' .. tostring(err.message))
      end
      local event = result.event
      notify(('snapshot %s (+%d ~%d -%d)'):format(tostring(event.commit):sub(1, 7), event.added or 0, event.modified or 0, event.deleted or 0))
      callback(nil, result)
    end)
  end, callback)
end

-- ---------------------------------------------------------------------------
-- Time travel
-- ---------------------------------------------------------------------------

--- Finds an event by id, or by the end of its id as the timeline shows it
--- (at least six hex digits, matching one event of the timeline only).
---@param tl exo.Timeline?
---@param id string
---@return string? id, string? why_not
local function resolve_event(tl, id)
  if #id >= 36 then
    return id
  end
  local suffix = id:gsub('-', ''):lower()
  if not suffix:match('^%x+$') or #suffix < 6 then
    return nil, ('%q is not an event id: give the id, or its last 8 hex digits as the timeline shows them'):format(id)
  end
  if not tl then
    return nil, 'no open timeline to find ' .. id .. ' in: open it (:Exo open), or give the whole id'
  end
  local found
  for i = #tl.events, 1, -1 do
    local event_id = tl.events[i].id
    if event_id:gsub('-', ''):lower():sub(-#suffix) == suffix then
      if found then
        return nil, id .. ' matches more than one event: give more of its digits'
      end
      found = event_id
    end
  end
  if not found then
    return nil, 'no event of this conversation ends in ' .. id
  end
  return found
end

--- The event to rewind to when none is named: the one before the last
--- turn (and before the session it opened), which undoes that turn.
---@param ctx exo.Context
---@param callback fun(err: string?, event: table?)
local function before_last_turn(ctx, callback)
  local params = { agent = ctx.agent, conversation = ctx.conversation, kind = 'turn_started', desc = true, limit = 1 }
  client.request('events/list', params, function(err, page)
    if err then
      return callback(err.message)
    end
    local started = page.events and page.events[1]
    if not started then
      return callback('no turn to undo; put the cursor on an event in the timeline, or name one')
    end
    local before = { agent = ctx.agent, conversation = ctx.conversation, before = started.id, desc = true, limit = 2 }
    client.request('events/list', before, function(before_err, earlier)
      if before_err then
        return callback(before_err.message)
      end
      local events = earlier.events or {}
      local target = events[1]
      if target and target.kind == 'session_started' and target.session == started.session then
        target = events[2]
      end
      if not target then
        return callback('nothing before the last turn to rewind to')
      end
      callback(nil, target)
    end)
  end)
end

--- Rewinds to an event: `opts.to` (an id, or the end of one as the
--- timeline shows it), else the event under the cursor in a timeline, else
--- the event before the last turn.
---@param opts { to: string?, force: boolean? }
---@param callback fun(err: string?, result: table?)?
function M.rewind(opts, callback)
  callback = callback or function() end
  with_context(function(ctx)
    local tl = timeline.for_conversation(ctx.conversation)
    if opts.to then
      local to, why = resolve_event(tl, opts.to)
      if not to then
        notify('rewind: ' .. why, vim.log.levels.ERROR)
        return callback(why)
      end
      return travel.rewind(ctx, to, { force = opts.force }, callback)
    end
    local event, cursor_timeline = timeline.event_under_cursor()
    if event and cursor_timeline and cursor_timeline.conversation == ctx.conversation then
      return travel.rewind(ctx, event.id, { force = opts.force, describe = 'to ' .. render.short(event.id) .. ' (' .. event.kind .. ')' }, callback)
    end
    before_last_turn(ctx, function(err, target)
      if err then
        notify('rewind: ' .. err, vim.log.levels.ERROR)
        return callback(err)
      end
      travel.rewind(ctx, target.id, { force = opts.force, describe = 'to before the last turn' }, callback)
    end)
  end, or_report(callback))
end

--- Goes back to the branch the last rewind left behind.
---@param opts { force: boolean? }
---@param callback fun(err: string?, result: table?)?
function M.redo(opts, callback)
  with_context(function(ctx)
    travel.redo(ctx, opts, callback)
  end, or_report(callback))
end

--- Forks at the event under the cursor (or the head) into `opts.dir` (asked
--- for when nil; empty: the fork shares the workspace), then opens the
--- fork's timeline.
---@param opts { dir: string?, at: string? }
---@param callback fun(err: string?, ctx: exo.Context?)?
function M.fork(opts, callback)
  callback = callback or function() end
  with_context(function(ctx)
    local at = opts.at
    if not at then
      local event, cursor_timeline = timeline.event_under_cursor()
      if event and cursor_timeline and cursor_timeline.conversation == ctx.conversation then
        at = event.id
      end
    end
    local function go(dir)
      local workspace
      if dir and dir ~= '' then
        -- A leading ~ or ~user and environment variables are expanded, as
        -- a shell would; %, # and * are the folder's own (expand() would
        -- read them as the current file, the alternate one, a wildcard).
        local user, rest = dir:match('^~([%w._-]*)(.*)$')
        if user then
          local home = user == '' and vim.uv.os_homedir() or vim.fn.expand('~' .. user)
          if home:sub(1, 1) ~= '/' then
            local message = 'fork: no user ' .. user .. ' (for ~' .. user .. ')'
            notify(message, vim.log.levels.ERROR)
            return callback(message)
          end
          dir = home .. rest
        end
        dir = vim.fs.normalize(dir, { expand_env = true })
        if dir:sub(1, 1) ~= '/' then
          dir = (vim.uv.cwd() or '.') .. '/' .. dir
        end
        workspace = (vim.fs.normalize(dir, { expand_env = false }):gsub('(.)/$', '%1'))
      end
      travel.fork(ctx, at, workspace, function(err, conv)
        if err then
          return callback(err)
        end
        local fork_ctx = context_of(conv, ctx.agent_slug)
        M.use(fork_ctx)
        M.open_context(fork_ctx)
        callback(nil, fork_ctx)
      end)
    end
    if opts.dir then
      return go(opts.dir)
    end
    local default = ctx.workspace and (ctx.workspace .. '-fork') or ''
    vim.ui.input({
      prompt = 'exo: fork into a new folder (empty: share the workspace): ',
      default = default,
      completion = 'dir',
    }, function(dir)
      if dir == nil then
        return callback('cancelled')
      end
      go(dir)
    end)
  end, or_report(callback))
end

-- ---------------------------------------------------------------------------
-- Diffs
-- ---------------------------------------------------------------------------

--- Shows what a turn changed in a file, in diff mode: `opts.turn` (an id),
--- else the turn under the cursor in a timeline, else the last turn;
--- `opts.disk` compares the turn's start with the file on disk.
---@param opts { turn: string?, disk: boolean?, path: string? }
---@param callback fun(err: string?)?
function M.diff(opts, callback)
  callback = or_report(callback)
  with_context(function(ctx)
    local function go(turn)
      require('exo.diff').turn(ctx, turn, { disk = opts.disk, path = opts.path }, callback)
    end
    if opts.turn then
      return go(opts.turn)
    end
    local event, cursor_timeline = timeline.event_under_cursor()
    if event and event.turn and cursor_timeline and cursor_timeline.conversation == ctx.conversation then
      return go(event.turn)
    end
    local params = { agent = ctx.agent, conversation = ctx.conversation, kind = 'turn_started', desc = true, limit = 1 }
    client.request('events/list', params, function(err, page)
      if err then
        return callback(err.message)
      end
      local started = page.events and page.events[1]
      if not started then
        return callback('no turn yet')
      end
      go(started.turn)
    end)
  end, callback)
end

-- ---------------------------------------------------------------------------
-- Status
-- ---------------------------------------------------------------------------

--- Says how this editor reaches exo, and what is current.
function M.status()
  local info = client.info()
  local lines = { 'exo: ' .. info.status }
  if info.root then
    table.insert(lines, '  root: ' .. info.root)
  end
  if info.transport then
    local how = info.transport.kind == 'socket' and ('socket ' .. tostring(info.transport.socket))
      or ('exo daemon --stdio (pid ' .. tostring(info.transport.pid) .. ')')
    table.insert(lines, '  via: ' .. how)
  end
  if #info.started > 0 then
    table.insert(lines, ('  started detached: pid %s (log: %s)'):format(table.concat(info.started, ', '), tostring(info.log_file)))
  end
  if info.daemon then
    table.insert(lines, ('  daemon: pid %s, exo %s, up %ss'):format(info.daemon.pid, info.daemon.version, info.daemon.uptime_seconds))
  end
  if info.last_error then
    table.insert(lines, '  last error: ' .. info.last_error)
  end
  if M.current then
    table.insert(lines, ('  current: %s/%s'):format(M.current.agent_slug, M.current.slug))
  end
  vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
end

return M
