--- *exo.client* The one connection of this editor to the exo daemon.
---
--- Features:
--- - Connects to the root's running daemon over its Unix socket (found
---   through `<root>/daemon.lock`, else `<root>/exo.sock`), else starts
---   `exo daemon` detached (the default) and connects to its socket, or,
---   with `daemon = 'stdio'`, starts `exo daemon --stdio` as a child
---   process, which becomes the root's daemon (or relays to one that
---   started meanwhile).
--- - Reconnects, with backoff, when the daemon goes away while something
---   still needs it (an open timeline), and tells its listeners so they can
---   watch again. A reconnect only knocks on the socket: a daemon is
---   started for a request of the user's, never behind their back (after
---   `exo daemon stop`, it stays stopped until an `:Exo` command).
--- - Every callback runs on the main loop; nothing here waits.
---
--- Key design ideas:
--- - The lock file's existence means nothing (it stays after the daemon
---   exits): connecting to the socket is the test, and `daemon/status` must
---   name this root before the connection is used.
--- - A daemon started detached serves the root for every client (other
---   editors, the command line, turns they run) and outlives this editor,
---   like one started from a shell: quitting Neovim never cancels another
---   client's turn. Its output goes to a log in Neovim's per-user log
---   directory (`stdpath('log')`), which is what a failed start reports.
--- - With `daemon = 'stdio'`, the started daemon's stdin is this editor's
---   connection: when the editor exits, stdin closes and that daemon shuts
---   down gracefully, ending the turns other clients run through it.

local config = require('exo.config')
local rpc = require('exo.rpc')

local M = {}

--- This plugin's version, sent in `initialize`.
M.version = '0.1.0'

---@alias exo.client.Status 'disconnected'|'connecting'|'connected'

local state = {
  ---@type exo.client.Status
  status = 'disconnected',
  ---@type exo.rpc.Connection?
  conn = nil,
  ---@type { kind: 'socket'|'stdio', socket: string?, pid: integer?, handle: uv.uv_process_t? }?
  transport = nil,
  ---@type string?
  root = nil,
  ---@type table? the daemon's `daemon/status`
  daemon = nil,
  ---@type table? the daemon's `initialize` capabilities
  capabilities = nil,
  ---@type fun(err: string?)[]
  waiters = {},
  ---@type table<integer, fun(method: string, params: table)>
  listeners = {},
  ---@type table<integer, fun(status: exo.client.Status, detail: string?)>
  status_listeners = {},
  next_listener = 0,
  ---@type table<string, true> what needs the connection kept up
  wanted = {},
  retry_ms = nil,
  ---@type uv.uv_timer_t?
  retry_timer = nil,
  ---@type string[] the last lines a started daemon wrote to stderr
  stderr_tail = {},
  ---@type string? why the last connection attempt failed
  last_error = nil,
  ---@type table<integer, true> pids of the `--stdio` daemons this editor started that still run
  spawned = {},
  ---@type integer[] pids of the detached daemons this editor started
  started = {},
  ---@type string? the log of the detached daemons this editor starts
  log_file = nil,
  ---@type integer? the log's size when the last one started
  log_offset = nil,
  ---@type boolean whether the attempt under way may start a daemon
  may_start = false,
  generation = 0,
}

-- ---------------------------------------------------------------------------
-- Listeners
-- ---------------------------------------------------------------------------

--- Calls `fn(method, params)` for every notification the daemon sends.
---@param fn fun(method: string, params: table)
---@return fun() unsubscribe
function M.subscribe(fn)
  state.next_listener = state.next_listener + 1
  local id = state.next_listener
  state.listeners[id] = fn
  return function()
    state.listeners[id] = nil
  end
end

--- Calls `fn(status, detail)` whenever the connection's status changes.
---@param fn fun(status: exo.client.Status, detail: string?)
---@return fun() unsubscribe
function M.on_status(fn)
  state.next_listener = state.next_listener + 1
  local id = state.next_listener
  state.status_listeners[id] = fn
  return function()
    state.status_listeners[id] = nil
  end
end

local function set_status(status, detail)
  state.status = status
  for _, fn in pairs(state.status_listeners) do
    local ok, err = pcall(fn, status, detail)
    if not ok then
      vim.notify('exo: ' .. tostring(err), vim.log.levels.ERROR)
    end
  end
end

local function dispatch_notification(method, params)
  for _, fn in pairs(state.listeners) do
    local ok, err = xpcall(fn, debug.traceback, method, params)
    if not ok then
      rpc.report(err)
    end
  end
end

-- ---------------------------------------------------------------------------
-- Connecting
-- ---------------------------------------------------------------------------

local schedule_reconnect

---@param err string?
local function finish_waiters(err)
  local waiters = state.waiters
  state.waiters = {}
  for _, fn in ipairs(waiters) do
    local ok, cb_err = xpcall(fn, debug.traceback, err)
    if not ok then
      rpc.report(cb_err)
    end
  end
end

---@param generation integer
---@param err string
local function fail(generation, err)
  if generation ~= state.generation then
    return
  end
  state.last_error = err
  state.conn = nil
  state.transport = nil
  set_status('disconnected', err)
  finish_waiters(err)
  schedule_reconnect()
end

--- The socket `daemon.lock` names, or nil when it names none.
---@param root string
---@return string?
local function locked_socket(root)
  local file = io.open(root .. '/daemon.lock', 'r')
  if not file then
    return nil
  end
  local text = file:read('*a')
  file:close()
  local ok, lock = pcall(vim.json.decode, text)
  if ok and type(lock) == 'table' and type(lock.socket) == 'string' then
    return lock.socket
  end
  return nil
end

---@param path string?
---@return string?
local function canonical(path)
  return path and (vim.uv.fs_realpath(path) or path)
end

--- Checks that the daemon at the other end serves this root, then marks
--- the connection ready.
---@param generation integer
---@param conn exo.rpc.Connection
local function handshake(generation, conn)
  conn:request('initialize', {
    protocol_versions = { '1' },
    client = { name = 'exo.nvim', version = M.version },
  }, function(err, initialized)
    if generation ~= state.generation then
      return
    end
    if err then
      return conn:close('the daemon refused initialize: ' .. tostring(err.message))
    end
    state.capabilities = initialized.capabilities or {}
    conn:request('daemon/status', nil, function(status_err, status)
      if generation ~= state.generation then
        return
      end
      if status_err then
        return conn:close('daemon/status failed: ' .. tostring(status_err.message))
      end
      if canonical(status.root) ~= canonical(state.root) then
        return conn:close(('the daemon at %s serves %s, not %s'):format(
          tostring(status.socket), tostring(status.root), tostring(state.root)))
      end
      state.daemon = status
      state.retry_ms = nil
      state.last_error = nil
      set_status('connected')
      finish_waiters(nil)
    end)
  end)
end

---@param generation integer
---@return fun(method: string, params: table), fun(reason: string)
local function connection_callbacks(generation)
  local function on_close(reason)
    if generation ~= state.generation then
      return
    end
    local was_connected = state.status == 'connected'
    state.conn = nil
    state.daemon = nil
    state.transport = nil
    state.generation = state.generation + 1
    set_status('disconnected', reason)
    if not was_connected then
      state.last_error = reason
      finish_waiters('cannot reach the exo daemon: ' .. reason .. M.stderr_hint())
    end
    schedule_reconnect()
  end
  return dispatch_notification, on_close
end

---@param generation integer
local function start_stdio(generation)
  local cmd = config.command()
  local args = vim.list_slice(cmd, 2)
  vim.list_extend(args, { '--root', state.root, 'daemon', '--stdio' })
  local stdin = assert(vim.uv.new_pipe(false))
  local stdout = assert(vim.uv.new_pipe(false))
  local stderr = assert(vim.uv.new_pipe(false))
  local env
  if config.options.env then
    env = {}
    for name, value in pairs(vim.tbl_extend('force', vim.fn.environ(), config.options.env)) do
      table.insert(env, name .. '=' .. value)
    end
  end
  state.stderr_tail = {}
  local conn
  local handle, pid_or_err
  handle, pid_or_err = vim.uv.spawn(cmd[1], {
    args = args,
    stdio = { stdin, stdout, stderr },
    env = env,
    cwd = vim.fs.dirname(state.root),
  }, function(code, signal)
    state.spawned[pid_or_err] = nil
    if handle and not handle:is_closing() then
      handle:close()
    end
    vim.schedule(function()
      if conn and not conn.closed then
        conn:close(('exo daemon --stdio exited (code %d, signal %d)'):format(code, signal))
      end
    end)
  end)
  if not handle then
    for _, pipe in ipairs({ stdin, stdout, stderr }) do
      pipe:close()
    end
    return fail(generation, ('cannot start %s: %s'):format(cmd[1], tostring(pid_or_err)))
  end
  state.spawned[pid_or_err] = true
  stderr:read_start(function(_, chunk)
    if chunk then
      for line in chunk:gmatch('[^\n]+') do
        table.insert(state.stderr_tail, line)
        if #state.stderr_tail > 50 then
          table.remove(state.stderr_tail, 1)
        end
      end
    elseif not stderr:is_closing() then
      stderr:close()
    end
  end)
  local notification, on_close = connection_callbacks(generation)
  conn = rpc.connect({
    reader = stdout,
    writer = stdin,
    on_notification = notification,
    on_close = on_close,
  })
  state.conn = conn
  state.transport = { kind = 'stdio', pid = pid_or_err, handle = handle }
  handshake(generation, conn)
end

--- Uses a connected socket as this editor's connection.
---@param generation integer
---@param pipe uv.uv_pipe_t
---@param socket string
local function use_socket(generation, pipe, socket)
  local notification, on_close = connection_callbacks(generation)
  local conn = rpc.connect({
    reader = pipe,
    writer = pipe,
    on_notification = notification,
    on_close = on_close,
  })
  state.conn = conn
  state.transport = { kind = 'socket', socket = socket }
  handshake(generation, conn)
end

--- Tries the root's socket: the one `daemon.lock` names, else
--- `<root>/exo.sock`; `callback(pipe, socket)` on the main loop, with a nil
--- pipe when nobody listens there.
---@param root string
---@param callback fun(pipe: uv.uv_pipe_t?, socket: string)
local function try_socket(root, callback)
  local socket = locked_socket(root) or (root .. '/exo.sock')
  if not vim.uv.fs_stat(socket) then
    return vim.schedule(function()
      callback(nil, socket)
    end)
  end
  local pipe = assert(vim.uv.new_pipe(false))
  pipe:connect(socket, function(err)
    vim.schedule(function()
      if err then
        if not pipe:is_closing() then
          pipe:close()
        end
        return callback(nil, socket)
      end
      callback(pipe, socket)
    end)
  end)
end

-- A log bigger than this is moved aside (to `.1`) before a daemon starts.
local LOG_LIMIT = 4 * 1024 * 1024

--- Where the detached daemons of `root` log: this user's Neovim log
--- directory (never the root: exo refuses a log inside it).
---@param root string
---@return string
local function daemon_log(root)
  local dir = vim.fn.stdpath('log')
  vim.fn.mkdir(dir, 'p', tonumber('700', 8))
  return ('%s/exo-daemon-%s.log'):format(dir, vim.fn.sha256(root):sub(1, 16))
end

--- The last non-empty line `path` holds after byte `offset`, reading at
--- most its last 4 KiB.
---@param path string
---@param offset integer
---@return string
local function log_tail(path, offset)
  local fd = vim.uv.fs_open(path, 'r', 0)
  if not fd then
    return ''
  end
  local stat = vim.uv.fs_fstat(fd)
  local size = stat and stat.size or 0
  local from = math.max(offset, size - 4096)
  local text = size > from and vim.uv.fs_read(fd, size - from, from) or ''
  vim.uv.fs_close(fd)
  local last = ''
  for line in tostring(text):gmatch('[^\n]+') do
    if line:match('%S') then
      last = line
    end
  end
  return last
end

---@param code integer
---@param signal integer
---@return string
local function describe_exit(code, signal)
  return signal ~= 0 and ('signal ' .. signal) or ('status ' .. code)
end

--- Starts `exo daemon` for the root, detached from this editor, and
--- connects to its socket once it answers. A daemon another client started
--- meanwhile is used as well (ours then exits saying one already runs).
---@param generation integer
local function start_detached(generation)
  local cmd = config.command()
  local args = vim.list_slice(cmd, 2)
  vim.list_extend(args, { '--root', state.root, 'daemon' })
  local log = daemon_log(state.root)
  local size = (vim.uv.fs_stat(log) or { size = 0 }).size
  if size > LOG_LIMIT then
    vim.uv.fs_rename(log, log .. '.1')
    size = 0
  end
  state.log_file = log
  state.log_offset = size
  local fd, open_err = vim.uv.fs_open(log, 'a', tonumber('600', 8))
  if not fd then
    return fail(generation, ('cannot open the daemon log %s: %s'):format(log, tostring(open_err)))
  end
  local env
  if config.options.env then
    env = {}
    for name, value in pairs(vim.tbl_extend('force', vim.fn.environ(), config.options.env)) do
      table.insert(env, name .. '=' .. value)
    end
  end
  local exited
  local handle, pid_or_err
  handle, pid_or_err = vim.uv.spawn(cmd[1], {
    args = args,
    stdio = { nil, fd, fd },
    env = env,
    cwd = vim.fs.dirname(state.root),
    detached = true,
  }, function(code, signal)
    exited = { code = code, signal = signal }
    if handle and not handle:is_closing() then
      handle:close()
    end
  end)
  vim.uv.fs_close(fd)
  if not handle then
    return fail(generation, ('cannot start %s: %s'):format(cmd[1], tostring(pid_or_err)))
  end
  -- Neovim may exit while the daemon runs on.
  handle:unref()
  table.insert(state.started, pid_or_err)
  local delay = 20
  local function attempt()
    if generation ~= state.generation or state.status ~= 'connecting' then
      return
    end
    try_socket(state.root, function(pipe, socket)
      if generation ~= state.generation or state.status ~= 'connecting' then
        if pipe and not pipe:is_closing() then
          pipe:close()
        end
        return
      end
      if pipe then
        return use_socket(generation, pipe, socket)
      end
      if exited then
        local last = log_tail(log, size)
        -- Another client's daemon won the race (bound, or still starting).
        if not last:find('already running', 1, true) and not last:find('is starting', 1, true) then
          local why = last ~= '' and (': ' .. last) or ''
          return fail(generation, ('exo daemon exited (%s)%s (log: %s)'):format(describe_exit(exited.code, exited.signal), why, log))
        end
      end
      delay = math.min(delay * 2, 500)
      vim.defer_fn(attempt, delay)
    end)
  end
  vim.defer_fn(attempt, delay)
end

--- Connects to the root's daemon; starts one when none answers only when
--- `may_start` (a request of the user's waits), never on a reconnect of
--- its own: a daemon stopped on purpose stays stopped until asked for.
---@param may_start boolean
local function start(may_start)
  state.generation = state.generation + 1
  local generation = state.generation
  state.may_start = may_start
  set_status('connecting')
  local root, why = config.root()
  if not root then
    return fail(generation, why)
  end
  state.root = root
  local timeout = config.options.connect_timeout_ms
  vim.defer_fn(function()
    if generation == state.generation and state.status == 'connecting' then
      if state.conn then
        state.conn:close('no answer within ' .. timeout .. ' ms')
      else
        local log = state.log_file and log_tail(state.log_file, state.log_offset or 0) or ''
        fail(generation, 'no answer from the exo daemon within ' .. timeout .. ' ms' .. (log ~= '' and (' (its log says: ' .. log .. ')') or ''))
      end
    end
  end, timeout)
  try_socket(root, function(pipe, socket)
    if generation ~= state.generation then
      if pipe and not pipe:is_closing() then
        pipe:close()
      end
      return
    end
    if pipe then
      return use_socket(generation, pipe, socket)
    end
    -- Nobody listens (no daemon, or a lock left by one that exited).
    if not state.may_start then
      return fail(generation, 'no exo daemon runs for ' .. root .. ' (any :Exo command starts one)')
    end
    if config.options.daemon == 'stdio' then
      start_stdio(generation)
    else
      start_detached(generation)
    end
  end)
end

schedule_reconnect = function()
  if next(state.wanted) == nil or state.retry_timer then
    return
  end
  local backoff = config.options.reconnect
  state.retry_ms = state.retry_ms and math.min(state.retry_ms * 2, backoff.max_ms) or backoff.initial_ms
  state.retry_timer = vim.defer_fn(function()
    state.retry_timer = nil
    if next(state.wanted) ~= nil and state.status == 'disconnected' then
      start(false)
    end
  end, state.retry_ms)
end

-- ---------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------

--- Runs `callback(err)` once connected (at once when already), or with why
--- the connection could not be made.
---@param callback fun(err: string?)
function M.ensure(callback)
  if state.status == 'connected' then
    return callback(nil)
  end
  table.insert(state.waiters, callback)
  if state.status == 'disconnected' then
    start(true)
  else
    -- A reconnect of its own is under way: it may start a daemon now.
    state.may_start = true
  end
end

--- Sends a request once connected; `callback(err, result)` gets an
--- `exo.rpc.Error` (a table with `message` and `data.code`) on failure.
---@param method string
---@param params table?
---@param callback fun(err: exo.rpc.Error?, result: any)?
function M.request(method, params, callback)
  callback = callback or function(err)
    if err then
      vim.notify('exo: ' .. method .. ': ' .. tostring(err.message), vim.log.levels.ERROR)
    end
  end
  M.ensure(function(err)
    if err then
      return callback(rpc.local_error(err), nil)
    end
    state.conn:request(method, params, callback)
  end)
end

--- Keeps the connection up (reconnecting when it is lost) while `key` is
--- wanted.
---@param key string
---@param wanted boolean
function M.want(key, wanted)
  state.wanted[key] = wanted or nil
  if wanted and state.status == 'disconnected' then
    schedule_reconnect()
  end
end

--- Whether the connected daemon serves `method` (false when not
--- connected).
---@param method string
---@return boolean
function M.serves(method)
  local methods = state.status == 'connected' and state.capabilities and state.capabilities.methods or {}
  return vim.tbl_contains(methods, method)
end

---@return exo.client.Status
function M.status()
  return state.status
end

--- What the connection is: root, transport, the daemon's status, the last
--- error and the started daemon's last stderr lines.
---@return table
function M.info()
  return {
    status = state.status,
    root = state.root,
    transport = state.transport and { kind = state.transport.kind, socket = state.transport.socket, pid = state.transport.pid },
    daemon = state.daemon,
    spawned = vim.tbl_keys(state.spawned),
    started = vim.deepcopy(state.started),
    log_file = state.log_file,
    last_error = state.last_error,
    stderr = vim.deepcopy(state.stderr_tail),
  }
end

--- Forgets the detached daemons started so far (they were stopped).
function M._forget_started()
  state.started = {}
end

--- The last stderr lines of a started daemon, as a suffix for a message.
---@return string
function M.stderr_hint()
  local tail = state.stderr_tail
  if #tail == 0 then
    return ''
  end
  return ' (exo said: ' .. tail[#tail] .. ')'
end

--- Closes the connection and stops reconnecting (a `--stdio` daemon then
--- shuts down, its stdin closed; a detached one runs on).
function M.disconnect()
  state.wanted = {}
  if state.retry_timer then
    state.retry_timer:stop()
    if not state.retry_timer:is_closing() then
      state.retry_timer:close()
    end
    state.retry_timer = nil
  end
  state.generation = state.generation + 1
  local conn = state.conn
  state.conn = nil
  state.daemon = nil
  state.transport = nil
  if conn then
    conn:close('disconnected by the editor')
  end
  set_status('disconnected', 'disconnected by the editor')
  finish_waiters('disconnected by the editor')
end

return M
