-- Test support: a temporary exo root with a workspace, an agent on a
-- scripted model and a recorded conversation, made with the real `exo`
-- command line; stubs for the UI the plugin asks through (vim.ui.select,
-- vim.ui.input, vim.notify); polling; and clean-up that stops every
-- daemon a test started.
--
-- The environment (HOME, XDG_*, EXO_ENCRYPTION_KEY,
-- EXO_CEILING_DIRECTORIES) is set by test/run, so nothing here touches the
-- user's own exo or Neovim state.

local H = {}

H.exo_bin = vim.env.EXO_BIN or 'exo'

-- A generous bound for anything that waits on another process: the tests
-- must pass on a loaded two-core machine. Waits poll and return as soon as
-- their condition holds, so the bound costs nothing when things go well.
H.timeout = tonumber(vim.env.EXO_TEST_TIMEOUT_MS or '') or 60000

---@type { msg: string, level: integer? }[]
H.notifications = {}

---@type table[] the fixtures of the running test
local fixtures = {}
---@type fun()[] what the running test asked to do at its end
local cleanups = {}

--- Runs `fn` when the test ends, before the fixtures go.
---@param fn fun()
function H.on_cleanup(fn)
  table.insert(cleanups, fn)
end

local real = { select = vim.ui.select, input = vim.ui.input, notify = vim.notify }

-- ---------------------------------------------------------------------------
-- Assertions and waiting
-- ---------------------------------------------------------------------------

---@param cond any
---@param message string?
function H.ok(cond, message)
  if not cond then
    error(message or 'assertion failed', 2)
  end
end

---@param actual any
---@param expected any
---@param message string?
function H.eq(actual, expected, message)
  if not vim.deep_equal(actual, expected) then
    error(('%sexpected %s, got %s'):format(message and (message .. ': ') or '', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

--- Waits until `predicate()` is truthy, processing events meanwhile;
--- fails with `what` (and `detail()` when given) after the timeout.
---@param what string
---@param predicate fun(): any
---@param detail (fun(): string)?
---@return any the predicate's value
function H.wait_for(what, predicate, detail)
  local value
  local ok = vim.wait(H.timeout, function()
    value = predicate()
    return value
  end, 10)
  if not ok then
    error(('timed out after %d ms waiting for %s%s'):format(H.timeout, what, detail and ('\n' .. detail()) or ''), 2)
  end
  return value
end

-- ---------------------------------------------------------------------------
-- UI stubs
-- ---------------------------------------------------------------------------

---@type { items: any[], opts: table, choice: any }[]
H.selects = {}
---@type { opts: table, answer: string? }[]
H.inputs = {}

--- How `vim.ui.select` answers: `fn(items, opts)` returns the item to
--- choose (nil dismisses). Unset, every select fails the test.
---@type (fun(items: any[], opts: table): any)?
H.on_select = nil
---@type (fun(opts: table): string?)?
H.on_input = nil

--- Chooses the item whose label (as `format_item` shows it) is `label`.
---@param items any[]
---@param opts table
---@param label string
---@return any
function H.pick(items, opts, label)
  for _, item in ipairs(items) do
    local shown = opts.format_item and opts.format_item(item) or tostring(item)
    if shown == label then
      return item
    end
  end
  error('no item ' .. label .. ' among ' .. vim.inspect(items))
end

function H.reset()
  H.notifications = {}
  H.selects = {}
  H.inputs = {}
  H.on_select = nil
  H.on_input = nil
  vim.notify = function(msg, level)
    table.insert(H.notifications, { msg = tostring(msg), level = level })
    if vim.env.EXO_TEST_VERBOSE then
      io.stderr:write('notify: ' .. tostring(msg) .. '\n')
    end
  end
  vim.ui.select = function(items, opts, on_choice)
    local record = { items = items, opts = opts or {} }
    table.insert(H.selects, record)
    if not H.on_select then
      table.insert(H.notifications, { msg = 'unexpected vim.ui.select: ' .. tostring(record.opts.prompt), level = vim.log.levels.ERROR })
      return on_choice(nil, nil)
    end
    local choice = H.on_select(items, record.opts)
    record.choice = choice
    -- Answer later, as a real picker does.
    vim.schedule(function()
      on_choice(choice, choice and vim.fn.index(items, choice) + 1 or nil)
    end)
  end
  vim.ui.input = function(opts, on_confirm)
    local record = { opts = opts or {} }
    table.insert(H.inputs, record)
    local answer = H.on_input and H.on_input(record.opts) or nil
    record.answer = answer
    vim.schedule(function()
      on_confirm(answer)
    end)
  end
end

--- Notifications whose text contains `text`.
---@param text string
---@return { msg: string, level: integer? }[]
function H.notified(text)
  return vim.tbl_filter(function(n)
    return n.msg:find(text, 1, true) ~= nil
  end, H.notifications)
end

-- ---------------------------------------------------------------------------
-- Running exo
-- ---------------------------------------------------------------------------

---@class exo.test.Fixture
---@field dir string
---@field root string
---@field workspace string

--- Runs `exo --root ROOT ARGS` and returns its result; fails unless it
--- exits 0 (or `expect_code`).
---@param fx exo.test.Fixture
---@param args string[]
---@param opts { stdin: string?, expect_code: integer? }?
---@return vim.SystemCompleted
function H.exo(fx, args, opts)
  opts = opts or {}
  local cmd = { H.exo_bin, '--root', fx.root }
  vim.list_extend(cmd, args)
  local result = vim.system(cmd, { text = true, stdin = opts.stdin, cwd = fx.dir }):wait(H.timeout)
  local expected = opts.expect_code or 0
  if result.code ~= expected then
    error(('exo %s exited %s (expected %d)\nstdout: %s\nstderr: %s'):format(
      table.concat(args, ' '), tostring(result.code), expected, result.stdout or '', result.stderr or ''), 2)
  end
  return result
end

--- `exo --json ARGS`, decoded.
---@param fx exo.test.Fixture
---@param args string[]
---@param opts table?
---@return table
function H.exo_json(fx, args, opts)
  local all = { '--json' }
  vim.list_extend(all, args)
  return vim.json.decode(H.exo(fx, all, opts).stdout, { luanil = { object = true, array = true } })
end

---@param path string
---@param text string
function H.write(path, text)
  vim.fn.mkdir(vim.fs.dirname(path), 'p')
  local file = assert(io.open(path, 'wb'))
  file:write(text)
  file:close()
end

---@param path string
---@return string?
function H.read(path)
  local file = io.open(path, 'rb')
  if not file then
    return nil
  end
  local text = file:read('*a')
  file:close()
  return text
end

--- A temporary root with a workspace, an agent `coder` on a scripted model
--- and a conversation `coder/work` bound to the workspace; `opts.turns`
--- are sent first, with `exo conversation send` (in-process: no daemon).
---@param opts { approval: string?, script: table, turns: string[]?, files: table<string, string>? }
---@return exo.test.Fixture
function H.fixture(opts)
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  dir = vim.uv.fs_realpath(dir)
  local fx = { dir = dir, root = dir .. '/.exo', workspace = dir .. '/ws' }
  table.insert(fixtures, fx)
  vim.fn.mkdir(fx.workspace, 'p')
  for path, text in pairs(opts.files or {}) do
    H.write(fx.workspace .. '/' .. path, text)
  end
  local script = dir .. '/script.json'
  H.write(script, vim.json.encode(opts.script))
  H.exo(fx, { 'model', 'register', 'scripted', '--provider', 'scripted', '--base-url', script })
  H.exo(fx, { 'agent', 'create', 'Coder', '--slug', 'coder', '--model', 'scripted', '--approval', opts.approval or 'auto' })
  H.exo(fx, { 'conversation', 'create', 'coder', 'Work', '--slug', 'work', '--workspace', fx.workspace })
  for _, prompt in ipairs(opts.turns or {}) do
    H.exo(fx, { 'conversation', 'send', 'coder', 'work', prompt })
  end
  -- The stub of vim.ui.select records every prompt whole, as Neovim's own
  -- picker prints it; the tests of the buffer for long prompts ask for it.
  require('exo').setup({ cmd = H.exo_bin, root = fx.root, timeline = { open = 'vsplit' }, long_prompts = 'picker' })
  return fx
end

--- The conversation's events, as `exo conversation events` lists them.
---@param fx exo.test.Fixture
---@param conversation string?
---@return table[]
function H.events(fx, conversation)
  return H.exo_json(fx, { 'conversation', 'events', 'coder', conversation or 'work' }).events
end

-- ---------------------------------------------------------------------------
-- The plugin
-- ---------------------------------------------------------------------------

--- Opens `coder/work`'s timeline (in a split), waits for its history to be
--- in, and goes back to the window the test was in.
---@param target string?
---@return exo.Timeline
function H.open_timeline(target)
  local win = vim.api.nvim_get_current_win()
  local opened, failure
  require('exo').open(target or 'coder/work', function(err, tl)
    failure = err
    opened = tl
  end)
  H.wait_for('the timeline to open', function()
    return opened or failure
  end)
  H.ok(not failure, failure)
  H.wait_for('the timeline to load', function()
    return opened.loaded
  end, function()
    return H.dump(opened)
  end)
  if vim.api.nvim_win_is_valid(win) then
    vim.api.nvim_set_current_win(win)
  end
  return opened
end

---@param tl exo.Timeline
---@return string[]
function H.lines(tl)
  return vim.api.nvim_buf_get_lines(tl.buf, 0, -1, false)
end

---@param tl exo.Timeline
---@return string
function H.dump(tl)
  return 'timeline:\n  ' .. table.concat(H.lines(tl), '\n  ')
    .. '\nnotifications:\n  ' .. table.concat(vim.tbl_map(function(n)
      return n.msg
    end, H.notifications), '\n  ')
end

--- The first line of the timeline containing `text`, or nil.
---@param tl exo.Timeline
---@param text string
---@return integer? line
function H.find_line(tl, text)
  for i, line in ipairs(H.lines(tl)) do
    if line:find(text, 1, true) then
      return i
    end
  end
  return nil
end

--- Waits until the timeline shows a line containing `text`.
---@param tl exo.Timeline
---@param text string
---@return integer line
function H.wait_line(tl, text)
  return H.wait_for('a timeline line containing ' .. vim.inspect(text), function()
    return H.find_line(tl, text)
  end, function()
    return H.dump(tl)
  end)
end

--- Calls `fn(callback)` (a plugin function taking a callback) and waits
--- for the callback; returns its arguments.
---@param what string
---@param fn fun(callback: fun(...))
---@return any ...
function H.await(what, fn)
  local results
  fn(function(...)
    results = vim.F.pack_len(...)
  end)
  H.wait_for(what, function()
    return results
  end)
  return vim.F.unpack_len(results)
end

--- The buffer showing a question whole (exo.review) of `kind`
--- (`approval`, `confirm`), once it is the current one.
---@param kind string
---@return integer
function H.wait_question(kind)
  return H.wait_for('the buffer showing the whole ' .. kind, function()
    local buf = vim.api.nvim_get_current_buf()
    return vim.api.nvim_buf_get_name(buf):find('exo-question://' .. kind .. '/', 1, true) and buf
  end)
end

--- A buffer's text.
---@param buf integer
---@return string
function H.text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

--- In a buffer showing a question whole (exo.review), gives the answer
--- labelled `label`: the cursor on its line, then Enter, as typed.
---@param buf integer
---@param label string
function H.answer(buf, label)
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  for i, line in ipairs(lines) do
    if line == '  [ ' .. label .. ' ]' then
      vim.api.nvim_win_set_cursor(vim.fn.win_findbuf(buf)[1], { i, 0 })
      vim.api.nvim_feedkeys(vim.keycode('<CR>'), 'x', false)
      return
    end
  end
  error('no answer ' .. label .. ' in\n' .. table.concat(lines, '\n'))
end

-- ---------------------------------------------------------------------------
-- Clean-up
-- ---------------------------------------------------------------------------

--- Closes the plugin's connection (a `--stdio` daemon it started shuts
--- down), stops the daemons of the test's roots (the detached ones the
--- plugin started among them), checks that none runs on, and removes the
--- temporary directories.
function H.cleanup()
  for i = #cleanups, 1, -1 do
    pcall(cleanups[i])
  end
  cleanups = {}
  local client = require('exo.client')
  local spawned = client.info().spawned
  local started = client.info().started
  require('exo').shutdown()
  vim.wait(30000, function()
    return #client.info().spawned == 0
  end, 20)
  for _, pid in ipairs(client.info().spawned) do
    vim.uv.kill(pid, 'sigkill')
  end
  for _, fx in ipairs(fixtures) do
    local lock = H.read(fx.root .. '/daemon.lock')
    local ok, details = pcall(vim.json.decode, lock or '')
    if ok and type(details) == 'table' and details.pid and vim.uv.kill(details.pid, 0) == 0 then
      vim.system({ H.exo_bin, '--root', fx.root, 'daemon', 'stop' }):wait(70000)
    end
  end
  local function running(pid)
    return vim.uv.kill(pid, 0) == 0
  end
  -- A detached daemon is reaped by the loop once it exits.
  vim.wait(30000, function()
    return #vim.tbl_filter(running, started) == 0
  end, 20)
  for _, pid in ipairs(vim.list_extend(vim.deepcopy(spawned), started)) do
    H.ok(not running(pid), 'a daemon the test started still runs: pid ' .. pid)
  end
  client._forget_started()
  -- Windows and buffers of the test go, so the next one starts afresh.
  vim.cmd('silent! tabonly!')
  vim.cmd('silent! only!')
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    pcall(vim.api.nvim_buf_delete, buf, { force = true })
  end
  require('exo').current = nil
  for _, fx in ipairs(fixtures) do
    if not vim.env.EXO_TEST_KEEP then
      vim.fn.delete(fx.dir, 'rf')
    end
  end
  fixtures = {}
  vim.notify, vim.ui.select, vim.ui.input = real.notify, real.select, real.input
end

return H
