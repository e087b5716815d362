--- *exo.timeline* A conversation's history in a buffer, updated live.
---
--- Features:
--- - One buffer per conversation, `exo://AGENT/CONVERSATION`: its events
---   (messages, tool calls and results, approvals, snapshots, rewinds,
---   forks), then a live tail with the text a running turn streams and the
---   approvals it waits for.
--- - Follows the conversation with `events/watch`: the stored history is
---   replayed, then every commit arrives as it happens, from this editor or
---   any other process going through the daemon.
--- - Watches again after a reconnection, from the last event it holds.
---
--- Key design ideas:
--- - The buffer mirrors the current history. A `rewound` event cuts the
---   mirror back to its `to_event` (the protocol leaves that to clients);
---   when `to_event` is not in the mirror (a redo to a branch left behind)
---   the timeline watches again from the start, which replays the new
---   history.
--- - Events are appended as lines above the tail, so a long history is
---   never redrawn for one new event; only a rewind redraws it all.
--- - Deltas and approval questions are not events: they live in the tail
---   and go when the event that records them arrives.

local client = require('exo.client')
local render = require('exo.render')

local M = {}

local ns = vim.api.nvim_create_namespace('exo.timeline')

---@class exo.Timeline
---@field agent string agent id
---@field conversation string conversation id
---@field agent_slug string?
---@field slug string?
---@field name string?
---@field workspace string?
---@field buf integer
---@field events table[] the current history, oldest first
---@field index table<string, integer> event id -> position in `events`
---@field event_at_line table<integer, string> 1-based line -> event id
---@field static_lines integer lines above the tail
---@field watch integer? the watch on the current connection
---@field watching boolean an `events/watch` is in flight
---@field watch_waiters fun()[] what waits for the watch
---@field streams table<string, { text: string, reasoning: string, tool: string? }>
---@field approvals table<string, table> pending approval questions by `turn/call_id`
---@field rendered_at table<string, integer> event id -> `vim.uv.hrtime()` when its lines went in
---@field problem string? what keeps it from following (shown in the tail)
---@field head string? the head `conversation/get` last reported
---@field loaded boolean the replay reached that head
---@field closed boolean
---@field tail_scheduled boolean?
local Timeline = {}
Timeline.__index = Timeline

---@type table<string, exo.Timeline> by conversation id
local by_conversation = {}
---@type table<integer, exo.Timeline> by watch id
local by_watch = {}
---@type table<integer, exo.Timeline> by buffer
local by_buf = {}
---@type table<string, exo.Timeline> by the turns its history holds
local by_turn = setmetatable({}, { __mode = 'v' })

-- ---------------------------------------------------------------------------
-- Buffer writing
-- ---------------------------------------------------------------------------

---@param buf integer
---@param fn fun()
local function with_modifiable(buf, fn)
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err)
  end
end

---@param buf integer
---@param first integer 0-based
---@param lines exo.render.Line[]
local function highlight(buf, first, lines)
  for i, line in ipairs(lines) do
    if line[2] and #line[1] > 0 then
      local length = #(line[1]:gsub('[\r\n]', '↵'))
      vim.api.nvim_buf_set_extmark(buf, ns, first + i - 1, 0, { end_col = length, hl_group = line[2] })
    end
  end
end

---@param lines exo.render.Line[]
---@return string[]
local function texts(lines)
  return vim.tbl_map(function(line)
    -- A buffer line cannot hold a newline (a shell command can).
    return (line[1]:gsub('[\r\n]', '↵'))
  end, lines)
end

--- Windows showing `buf` whose cursor is on its last line: they follow
--- what is appended.
---@param buf integer
---@return integer[]
local function following_windows(buf)
  local last = vim.api.nvim_buf_line_count(buf)
  local windows = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if vim.api.nvim_win_get_cursor(win)[1] >= last then
      table.insert(windows, win)
    end
  end
  return windows
end

---@param windows integer[]
---@param buf integer
local function scroll_to_end(windows, buf)
  local last = vim.api.nvim_buf_line_count(buf)
  for _, win in ipairs(windows) do
    if vim.api.nvim_win_is_valid(win) then
      vim.api.nvim_win_set_cursor(win, { last, 0 })
    end
  end
end

-- ---------------------------------------------------------------------------
-- Rendering
-- ---------------------------------------------------------------------------

---@return exo.render.Line[]
function Timeline:header()
  local title = ('exo %s/%s'):format(self.agent_slug or render.short(self.agent), self.slug or render.short(self.conversation))
  if self.name then
    title = title .. '  ' .. self.name
  end
  if self.workspace then
    title = title .. '  ' .. self.workspace
  end
  return { { title, 'ExoHeader' }, { '', nil } }
end

---@return exo.render.Line[]
function Timeline:tail()
  local out = {}
  for turn, stream in pairs(self.streams) do
    if stream.reasoning ~= '' then
      for _, line in ipairs(render.event({ kind = 'message', turn = turn, role = 'thinking', content = stream.reasoning })) do
        table.insert(out, { line[1], 'ExoStreaming' })
      end
    end
    if stream.text ~= '' then
      for _, line in ipairs(render.event({ kind = 'message', turn = turn, role = 'assistant', content = stream.text .. '▍' })) do
        table.insert(out, { line[1], 'ExoStreaming' })
      end
    end
    if stream.tool then
      table.insert(out, { '  calling ' .. stream.tool .. '…', 'ExoStreaming' })
    end
  end
  local pending = vim.tbl_values(self.approvals)
  table.sort(pending, function(a, b)
    return a.seq < b.seq
  end)
  for _, request in ipairs(pending) do
    table.insert(out, {
      ('  waiting for approval: %s  (ga or :Exo approvals)'):format(render.cut(render.describe_call(request.tool, request.arguments), 400)),
      'ExoApproval',
    })
  end
  if self.problem then
    table.insert(out, { '[' .. self.problem .. ']', 'ExoError' })
  elseif not self.loaded then
    table.insert(out, { '[loading…]', 'ExoMuted' })
  end
  return out
end

--- Redraws the whole buffer.
--- Whether the buffer can be drawn into: an unloaded one (`:bdelete`) is
--- drawn whole when it is read again.
---@return boolean
function Timeline:drawable()
  return vim.api.nvim_buf_is_valid(self.buf) and vim.api.nvim_buf_is_loaded(self.buf)
end

function Timeline:render_all()
  if not self:drawable() then
    return
  end
  local lines = self:header()
  self.event_at_line = {}
  for _, event in ipairs(self.events) do
    for _, line in ipairs(render.event(event)) do
      table.insert(lines, line)
      self.event_at_line[#lines] = event.id
    end
  end
  self.static_lines = #lines
  vim.list_extend(lines, self:tail())
  local now = vim.uv.hrtime()
  for _, event in ipairs(self.events) do
    self.rendered_at[event.id] = self.rendered_at[event.id] or now
  end
  with_modifiable(self.buf, function()
    vim.api.nvim_buf_clear_namespace(self.buf, ns, 0, -1)
    vim.api.nvim_buf_set_lines(self.buf, 0, -1, false, texts(lines))
    highlight(self.buf, 0, lines)
  end)
end

--- Redraws the tail once the messages read so far are handled: a stream
--- of deltas redraws it once per batch, not once per delta.
function Timeline:request_tail()
  if self.tail_scheduled then
    return
  end
  self.tail_scheduled = true
  vim.schedule(function()
    self.tail_scheduled = false
    self:render_tail()
  end)
end

--- Redraws the tail only.
function Timeline:render_tail()
  if not self:drawable() then
    return
  end
  local windows = following_windows(self.buf)
  local lines = self:tail()
  with_modifiable(self.buf, function()
    vim.api.nvim_buf_clear_namespace(self.buf, ns, self.static_lines, -1)
    vim.api.nvim_buf_set_lines(self.buf, self.static_lines, -1, false, texts(lines))
    highlight(self.buf, self.static_lines, lines)
  end)
  scroll_to_end(windows, self.buf)
end

--- Puts new events' lines above the tail.
---@param events table[]
function Timeline:render_appended(events)
  if not self:drawable() or #events == 0 then
    return
  end
  local windows = following_windows(self.buf)
  local lines = {}
  for _, event in ipairs(events) do
    for _, line in ipairs(render.event(event)) do
      table.insert(lines, line)
      self.event_at_line[self.static_lines + #lines] = event.id
    end
  end
  local first = self.static_lines
  with_modifiable(self.buf, function()
    vim.api.nvim_buf_set_lines(self.buf, first, first, false, texts(lines))
    highlight(self.buf, first, lines)
  end)
  self.static_lines = first + #lines
  local now = vim.uv.hrtime()
  for _, event in ipairs(events) do
    self.rendered_at[event.id] = now
  end
  scroll_to_end(windows, self.buf)
end

-- ---------------------------------------------------------------------------
-- Mirroring the history
-- ---------------------------------------------------------------------------

--- Bookkeeping an event does to the live tail: a recorded message replaces
--- its streamed text, a recorded decision its question.
---@param event table
---@return boolean tail_changed
function Timeline:settle(event)
  local turn = event.turn
  if event.kind == 'turn_started' and turn then
    by_turn[turn] = self
  end
  if event.kind == 'message' and event.role == 'assistant' and turn and self.streams[turn] then
    self.streams[turn] = { text = '', reasoning = '' }
    return true
  elseif event.kind == 'tool_call' and turn and self.streams[turn] then
    self.streams[turn].tool = nil
    return true
  elseif event.kind == 'custom' and event.type == 'exo.approval' and turn then
    local key = turn .. '/' .. tostring((event.payload or {}).call_id)
    if self.approvals[key] then
      self.approvals[key] = nil
      local by = (event.payload or {}).by
      require('exo.approvals').forget(key, by == 'user' and 'was answered elsewhere' or ('was decided by exo (%s)'):format(tostring(by)))
      return true
    end
  elseif event.kind == 'turn_ended' and turn then
    local changed = self.streams[turn] ~= nil
    self.streams[turn] = nil
    for key, request in pairs(self.approvals) do
      if request.turn == turn then
        self.approvals[key] = nil
        require('exo.approvals').forget(key, 'is moot: its turn ended')
        changed = true
      end
    end
    return changed
  end
  return false
end

--- The replay reached the head: windows showing the timeline go to its end.
function Timeline:mark_loaded()
  self.loaded = true
  vim.schedule(function()
    if vim.api.nvim_buf_is_valid(self.buf) then
      scroll_to_end(vim.fn.win_findbuf(self.buf), self.buf)
    end
  end)
end

--- Applies a batch of events from the watch.
---@param events table[]
function Timeline:apply(events)
  local appended = {}
  local redraw = false
  local tail_changed = false
  for _, event in ipairs(events) do
    if not self.index[event.id] then
      if event.kind == 'rewound' then
        local position = self.index[event.to_event]
        if not position then
          -- A redo to a branch this mirror never held: replay the history.
          if #appended > 0 then
            self:render_appended(appended)
          end
          return self:rewatch(nil)
        end
        if position < #self.events then
          for j = #self.events, position + 1, -1 do
            self.index[self.events[j].id] = nil
            self.events[j] = nil
          end
          redraw = true
          appended = {}
        end
      end
      table.insert(self.events, event)
      self.index[event.id] = #self.events
      table.insert(appended, event)
      tail_changed = self:settle(event) or tail_changed
    end
  end
  if not self.loaded and self.head and self.index[self.head] then
    self:mark_loaded()
    tail_changed = true
  end
  if redraw then
    self:render_all()
  else
    self:render_appended(appended)
    if tail_changed then
      self:render_tail()
    end
  end
end

-- ---------------------------------------------------------------------------
-- Watching
-- ---------------------------------------------------------------------------

---@param after string?
function Timeline:watch_from(after)
  if self.closed or self.watching then
    return
  end
  self.watching = true
  client.request('events/watch', { agent = self.agent, conversation = self.conversation, after = after }, function(err, result)
    self.watching = false
    local waiters = self.watch_waiters
    self.watch_waiters = {}
    for _, fn in ipairs(waiters) do
      vim.schedule(fn)
    end
    if self.closed then
      if result then
        client.request('events/unwatch', { watch = result.watch }, function() end)
      end
      return
    end
    if err then
      if after and err.data and err.data.code == 'not_found' and err.data.what ~= 'conversation' and err.data.what ~= 'agent' then
        -- The cursor left the history (a rewind while we were away).
        return self:rewatch(nil)
      end
      self.problem = 'not following: ' .. tostring(err.message)
      return self:render_tail()
    end
    self.watch = result.watch
    by_watch[result.watch] = self
    self.problem = nil
    self:render_tail()
    self:fetch_approvals()
    -- The replay is sent right after this response; once it is in, the
    -- timeline has reached the head.
    client.request('conversation/get', { agent = self.agent, conversation = self.conversation }, function(get_err, conv)
      if not get_err and conv then
        self.head = conv.head
        if not self.loaded and self.index[conv.head] then
          self:mark_loaded()
          self:render_tail()
        end
      end
    end)
  end)
end

--- Questions are not replayed to a watch: those asked before it started
--- (before this editor opened the timeline, or reconnected) are read with
--- `approval/list`.
function Timeline:fetch_approvals()
  client.request('approval/list', { agent = self.agent, conversation = self.conversation }, function(err, result)
    if err or self.closed then
      return
    end
    for _, request in ipairs(result.approvals or {}) do
      local key = request.turn .. '/' .. request.call_id
      if not self.approvals[key] then
        self.approvals[key] = vim.tbl_extend('force', request, { seq = vim.uv.hrtime() })
        self:request_tail()
      end
      require('exo.approvals').ask(request)
    end
  end)
end

--- Runs `fn` once the timeline follows its conversation (or failed to),
--- so that nothing streamed after it is missed.
---@param fn fun()
function Timeline:when_watching(fn)
  if self.watch then
    return fn()
  end
  table.insert(self.watch_waiters, fn)
  if not self.watching then
    local last = self.events[#self.events]
    self:watch_from(last and last.id)
  end
end

--- Drops the mirror and watches again from `after` (the start when nil).
---@param after string?
function Timeline:rewatch(after)
  if self.watch then
    by_watch[self.watch] = nil
    client.request('events/unwatch', { watch = self.watch }, function() end)
    self.watch = nil
  end
  if not after then
    self.events = {}
    self.index = {}
    self:render_all()
  end
  self:watch_from(after)
end

---@param method string
---@param params table
local function on_notification(method, params)
  local timeline = params.watch and by_watch[params.watch]
  if method == 'events/appended' then
    if timeline then
      timeline:apply(params.events or {})
    end
  elseif method == 'turn/delta' then
    if timeline then
      local stream = timeline.streams[params.turn] or { text = '', reasoning = '' }
      timeline.streams[params.turn] = stream
      if params.text then
        stream.text = stream.text .. params.text
      elseif params.reasoning then
        stream.reasoning = stream.reasoning .. params.reasoning
      elseif params.tool_call then
        stream.tool = tostring(params.tool_call.name)
      end
      timeline:request_tail()
    end
  elseif method == 'approval/request' then
    if timeline then
      local key = params.turn .. '/' .. params.call_id
      if not timeline.approvals[key] then
        timeline.approvals[key] = vim.tbl_extend('force', params, { seq = vim.uv.hrtime() })
        timeline:render_tail()
      end
      params.conversation = params.conversation or timeline.conversation
    end
    require('exo.approvals').ask(params)
  elseif method == 'events/lagged' then
    if timeline then
      by_watch[params.watch] = nil
      timeline.watch = nil
      timeline:watch_from(params.cursor)
    end
  end
end

local function on_status(status, detail)
  if status == 'disconnected' then
    by_watch = {}
    for _, timeline in pairs(by_conversation) do
      timeline.watch = nil
      timeline.watching = false
      timeline.streams = {}
      timeline.approvals = {}
      timeline.problem = 'disconnected from exo: ' .. tostring(detail or '?') .. '; reconnecting'
      timeline:render_tail()
    end
  elseif status == 'connected' then
    for _, timeline in pairs(by_conversation) do
      if not timeline.watch and not timeline.watching then
        local last = timeline.events[#timeline.events]
        timeline:watch_from(last and last.id)
      end
    end
  end
end

local subscribed = false
local function subscribe()
  if subscribed then
    return
  end
  subscribed = true
  render.define_highlights()
  client.subscribe(on_notification)
  client.on_status(on_status)
end

-- ---------------------------------------------------------------------------
-- Opening and closing
-- ---------------------------------------------------------------------------

local function buffer_maps(buf)
  local function map(lhs, fn, desc)
    vim.keymap.set('n', lhs, fn, { buffer = buf, desc = desc, nowait = true })
  end
  map('q', '<Cmd>close<CR>', 'Close the exo timeline')
  map('gd', function()
    require('exo').diff({})
  end, 'exo: diff the turn under the cursor')
  map('gD', function()
    require('exo').diff({ disk = true })
  end, 'exo: diff the turn under the cursor against the disk')
  map('gr', function()
    require('exo').rewind({})
  end, 'exo: rewind to the event under the cursor')
  map('gR', function()
    require('exo').redo({})
  end, 'exo: redo')
  map('gF', function()
    require('exo').fork({})
  end, 'exo: fork at the event under the cursor')
  map('gs', function()
    require('exo').send({})
  end, 'exo: send a message')
  map('ga', function()
    require('exo').approvals()
  end, 'exo: answer the approvals waiting')
end

--- The buffer's name for a conversation.
---@param agent_slug string
---@param slug string
---@return string
function M.bufname(agent_slug, slug)
  return ('exo://%s/%s'):format(agent_slug, slug)
end

--- Attaches a timeline to `buf` (or a new buffer) for a conversation known
--- by its record; reuses the conversation's timeline when it has one.
---@param conv table the conversation (`conversation/get`)
---@param agent_slug string
---@param buf integer?
---@return exo.Timeline
function M.attach(conv, agent_slug, buf)
  subscribe()
  local existing = by_conversation[conv.id]
  if existing and vim.api.nvim_buf_is_valid(existing.buf) then
    if buf and buf ~= existing.buf and vim.api.nvim_buf_is_valid(buf) then
      -- Opened again under its name (`:edit exo://...`): show the one we have.
      vim.api.nvim_win_set_buf(0, existing.buf)
      pcall(vim.api.nvim_buf_delete, buf, { force = true })
    elseif buf == existing.buf then
      -- Read again (`:edit!`, or after `:bdelete` unloaded it): Neovim
      -- emptied the buffer; the mirror is whole.
      existing:render_all()
    end
    return existing
  end
  if not buf then
    buf = vim.api.nvim_create_buf(true, true)
  end
  local name = M.bufname(agent_slug, conv.slug)
  if vim.api.nvim_buf_get_name(buf) ~= name then
    pcall(vim.api.nvim_buf_set_name, buf, name)
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = 'exo'
  local self = setmetatable({
    agent = conv.agent,
    conversation = conv.id,
    agent_slug = agent_slug,
    slug = conv.slug,
    name = conv.name,
    workspace = conv.workspace,
    head = conv.head,
    buf = buf,
    events = {},
    index = {},
    event_at_line = {},
    static_lines = 0,
    watching = false,
    watch_waiters = {},
    streams = {},
    approvals = {},
    rendered_at = {},
    loaded = false,
    closed = false,
  }, Timeline)
  by_conversation[conv.id] = self
  by_buf[buf] = self
  client.want('timeline:' .. conv.id, true)
  buffer_maps(buf)
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      self:close()
    end,
  })
  self:render_all()
  self:watch_from(nil)
  return self
end

function Timeline:close()
  if self.closed then
    return
  end
  self.closed = true
  client.want('timeline:' .. self.conversation, false)
  if self.watch then
    by_watch[self.watch] = nil
    if client.status() == 'connected' then
      client.request('events/unwatch', { watch = self.watch }, function() end)
    end
    self.watch = nil
  end
  if by_conversation[self.conversation] == self then
    by_conversation[self.conversation] = nil
  end
  by_buf[self.buf] = nil
end

---@param buf integer?
---@return exo.Timeline?
function M.for_buf(buf)
  return by_buf[buf or vim.api.nvim_get_current_buf()]
end

---@param conversation_id string
---@return exo.Timeline?
function M.for_conversation(conversation_id)
  return by_conversation[conversation_id]
end

--- The open timeline whose history holds `turn`.
---@param turn string?
---@return exo.Timeline?
function M.for_turn(turn)
  local timeline = turn and by_turn[turn]
  if timeline and not timeline.closed then
    return timeline
  end
  return nil
end

--- The event under the cursor of a window showing a timeline.
---@param win integer?
---@return table? event, exo.Timeline?
function M.event_under_cursor(win)
  win = win or vim.api.nvim_get_current_win()
  local timeline = by_buf[vim.api.nvim_win_get_buf(win)]
  if not timeline then
    return nil, nil
  end
  local line = vim.api.nvim_win_get_cursor(win)[1]
  local id = timeline.event_at_line[line]
  if not id then
    return nil, timeline
  end
  return timeline.events[timeline.index[id]], timeline
end

--- Every open timeline.
---@return exo.Timeline[]
function M.all()
  return vim.tbl_values(by_conversation)
end

--- Closes every timeline (their buffers stay, frozen).
function M.close_all()
  for _, timeline in pairs(by_conversation) do
    timeline:close()
  end
end

return M
