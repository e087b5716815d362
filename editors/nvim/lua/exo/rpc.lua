--- *exo.rpc* JSON-RPC 2.0 over newline-delimited JSON on libuv streams.
---
--- Features:
--- - Requests with callbacks, notifications, `$/cancelRequest`.
--- - Knows no exo method: `exo.client` speaks the protocol on top of it.
---
--- Key design ideas:
--- - libuv read callbacks run in a "fast" context, where most of the API is
---   off limits. They only queue the bytes and schedule one drain; decoding
---   and every callback run on the main loop (`vim.schedule`).
--- - `null` in a message decodes to `nil` (`luanil`), so absent and null
---   fields read the same, as the protocol allows.
--- - One callback failing never stops the drain: its error is reported (one
---   line; the trace is kept in `M.last_trace`) and the next message is
---   read.
--- - A message may be at most `M.max_frame_bytes` (1 GiB) long: the
---   daemon bounds what it reads, not what it sends (a replay batch of big
---   events is legitimately large), so the bound is only there to stop an
---   endless line from filling Neovim's memory.

local M = {}

--- The longest message read (1 GiB).
M.max_frame_bytes = 1024 * 1024 * 1024

--- The trace of the last callback that failed.
---@type string?
M.last_trace = nil

---@class exo.rpc.Error
---@field code integer
---@field message string
---@field data? table

---@class exo.rpc.Connection
---@field private reader uv.uv_stream_t
---@field private writer uv.uv_stream_t
---@field private next_id integer
---@field private pending table<integer, fun(err: exo.rpc.Error?, result: any)>
---@field private chunks string[]
---@field private partial string[] the pieces of a line not ended yet
---@field private partial_bytes integer their length
---@field private drain_scheduled boolean
---@field private on_notification fun(method: string, params: table)
---@field private on_close fun(reason: string)
---@field closed boolean
local Connection = {}
Connection.__index = Connection

-- ---------------------------------------------------------------------------
-- Construction
-- ---------------------------------------------------------------------------

--- Starts reading `reader` and returns a connection writing to `writer`
--- (the same stream for a socket, stdout and stdin for a child process).
---@param opts { reader: uv.uv_stream_t, writer: uv.uv_stream_t, on_notification: fun(method: string, params: table), on_close: fun(reason: string) }
---@return exo.rpc.Connection
function M.connect(opts)
  local self = setmetatable({
    reader = opts.reader,
    writer = opts.writer,
    next_id = 0,
    pending = {},
    chunks = {},
    partial = {},
    partial_bytes = 0,
    drain_scheduled = false,
    on_notification = opts.on_notification,
    on_close = opts.on_close,
    closed = false,
  }, Connection)
  self.reader:read_start(function(err, chunk)
    -- Fast context: queue only.
    if err then
      table.insert(self.chunks, { closed = 'read error: ' .. tostring(err) })
    elseif chunk == nil then
      table.insert(self.chunks, { closed = 'the daemon closed the connection' })
    else
      table.insert(self.chunks, chunk)
    end
    if not self.drain_scheduled then
      self.drain_scheduled = true
      vim.schedule(function()
        self:drain()
      end)
    end
  end)
  return self
end

-- ---------------------------------------------------------------------------
-- Sending
-- ---------------------------------------------------------------------------

--- An error object for failures that never reached the daemon.
---@param message string
---@return exo.rpc.Error
local function local_error(message)
  return { code = -32099, message = message, data = { code = 'disconnected' } }
end
M.local_error = local_error

---@param message table
---@return boolean sent
function Connection:send(message)
  if self.closed then
    return false
  end
  local ok, line = pcall(vim.json.encode, message)
  if not ok then
    error('exo: cannot encode ' .. tostring(message.method) .. ': ' .. tostring(line))
  end
  self.writer:write(line .. '\n')
  return true
end

--- Sends a request; `callback(err, result)` runs on the main loop once the
--- response arrives, or with an error when the connection closes first.
---@param method string
---@param params table?
---@param callback fun(err: exo.rpc.Error?, result: any)
---@return integer id
function Connection:request(method, params, callback)
  self.next_id = self.next_id + 1
  local id = self.next_id
  if self.closed then
    vim.schedule(function()
      callback(local_error('not connected to the exo daemon'), nil)
    end)
    return id
  end
  self.pending[id] = callback
  self:send({ jsonrpc = '2.0', id = id, method = method, params = params or vim.empty_dict() })
  return id
end

---@param method string
---@param params table?
function Connection:notify(method, params)
  self:send({ jsonrpc = '2.0', method = method, params = params or vim.empty_dict() })
end

--- Asks the daemon to cancel a request in flight; its callback still runs,
--- with the daemon's answer.
---@param id integer
function Connection:cancel(id)
  if self.pending[id] then
    self:notify('$/cancelRequest', { id = id })
  end
end

---@return integer
function Connection:pending_count()
  local n = 0
  for _ in pairs(self.pending) do
    n = n + 1
  end
  return n
end

--- Reports a failed callback's error in one line, keeping its trace in
--- `M.last_trace`.
---@param err any
function M.report(err)
  local text = tostring(err)
  M.last_trace = text
  local line = text:match('^[^\n]*') or text
  -- Where in the plugin it failed is in the trace, not the message.
  local bare
  repeat
    bare = line
    line = line:gsub('^[^:%s]+%.lua:%d+: ', '', 1)
  until line == bare
  vim.notify('exo: ' .. line, vim.log.levels.ERROR)
end

-- ---------------------------------------------------------------------------
-- Receiving
-- ---------------------------------------------------------------------------

local decode_opts = { luanil = { object = true, array = true } }

---@private
function Connection:drain()
  self.drain_scheduled = false
  local chunks = self.chunks
  self.chunks = {}
  local closed_reason
  for _, chunk in ipairs(chunks) do
    if type(chunk) == 'table' then
      closed_reason = chunk.closed
      break
    end
    if not chunk:find('\n', 1, true) then
      -- No line ends here: keep the piece (a large frame arrives in many
      -- pieces, and joining them once is linear).
      table.insert(self.partial, chunk)
      self.partial_bytes = self.partial_bytes + #chunk
    else
      table.insert(self.partial, chunk)
      local data = table.concat(self.partial)
      self.partial = {}
      local start = 1
      while true do
        local newline = data:find('\n', start, true)
        if not newline then
          break
        end
        local line = data:sub(start, newline - 1)
        start = newline + 1
        if line:find('%S') then
          self:dispatch(line)
        end
      end
      self.partial_bytes = 0
      if start <= #data then
        table.insert(self.partial, data:sub(start))
        self.partial_bytes = #data - start + 1
      end
    end
    if self.partial_bytes > M.max_frame_bytes then
      self.partial = {}
      self.partial_bytes = 0
      closed_reason = ('the daemon sent a message longer than %d MiB'):format(M.max_frame_bytes / 1048576)
      break
    end
  end
  if closed_reason then
    local rest = table.concat(self.partial)
    self.partial = {}
    self.partial_bytes = 0
    if rest:find('%S') then
      -- A last line without its newline still counts at end of input.
      self:dispatch(rest)
    end
    self:close(closed_reason)
  end
end

---@private
---@param line string
function Connection:dispatch(line)
  local ok, message = pcall(vim.json.decode, line, decode_opts)
  if not ok or type(message) ~= 'table' then
    vim.notify(('exo: the daemon sent a message that is not JSON (%d bytes); ignored'):format(#line), vim.log.levels.WARN)
    return
  end
  if message.method then
    if message.id == nil then
      self:guard(self.on_notification, message.method, message.params or {})
    end
    -- The daemon sends no requests; nothing to answer.
    return
  end
  local id = message.id
  if id == nil and self:pending_count() == 1 then
    -- An error without an id answers the only request outstanding.
    id = next(self.pending)
  end
  local callback = id and self.pending[id]
  if not callback then
    return
  end
  self.pending[id] = nil
  if message.error then
    self:guard(callback, message.error, nil)
  else
    self:guard(callback, nil, message.result)
  end
end

---@private
function Connection:guard(fn, ...)
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then
    M.report(err)
  end
end

-- ---------------------------------------------------------------------------
-- Closing
-- ---------------------------------------------------------------------------

--- Closes the streams and fails every request still waiting. Calling it
--- again does nothing.
---@param reason string?
function Connection:close(reason)
  if self.closed then
    return
  end
  self.closed = true
  reason = reason or 'closed'
  for _, stream in ipairs({ self.reader, self.writer }) do
    if not stream:is_closing() then
      pcall(stream.read_stop, stream)
      stream:close()
    end
  end
  local pending = self.pending
  self.pending = {}
  for _, callback in pairs(pending) do
    self:guard(callback, local_error('connection to the exo daemon lost: ' .. reason), nil)
  end
  self:guard(self.on_close, reason)
end

return M
