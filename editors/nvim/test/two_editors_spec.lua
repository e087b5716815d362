-- Two editors following one conversation: a second Neovim (a child of
-- this one, driven over its RPC channel) reaches the daemon this editor
-- started through its socket, sees the turn this editor runs, and can
-- answer its approval question; quitting this editor does not end the
-- turns the other one runs.

local h = require('helpers')
local scripts = require('scripts')

--- Starts a second, headless Neovim with the plugin (asking approvals by
--- itself, allowing each once) and returns its channel.
---@param fx exo.test.Fixture
---@return integer
local function second_editor(fx)
  local plugin = vim.fs.dirname(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)))
  local channel = vim.fn.jobstart({ vim.v.progpath, '--clean', '--embed', '--headless', '--cmd', 'set rtp^=' .. plugin }, {
    rpc = true,
    cwd = fx.dir,
  })
  h.ok(channel > 0, 'the second editor started')
  h.on_cleanup(function()
    pcall(vim.rpcrequest, channel, 'nvim_exec_lua', 'require("exo").shutdown()', {})
    vim.fn.jobstop(channel)
    vim.fn.jobwait({ channel }, 10000)
  end)
  vim.rpcrequest(channel, 'nvim_exec_lua', [[
    local bin, root = ...
    _G.asked = {}
    vim.ui.select = function(items, opts, on_choice)
      table.insert(_G.asked, opts.prompt)
      if opts.kind == 'exo.approval' then
        for i, item in ipairs(items) do
          if opts.format_item(item) == 'Allow once' then
            vim.schedule(function() on_choice(item, i) end)
          end
        end
      end
    end
    vim.notify = function() end
    require('exo').setup({ cmd = bin, root = root, timeline = { open = 'enew' }, approvals = 'ask', long_prompts = 'picker' })
    require('exo').open('coder/work')
  ]], { h.exo_bin, fx.root })
  return channel
end

---@param channel integer
---@return string[]
local function lines_of(channel)
  return vim.rpcrequest(channel, 'nvim_exec_lua', [[
    local tl = require('exo.timeline').for_buf()
    return tl and vim.api.nvim_buf_get_lines(tl.buf, 0, -1, false) or {}
  ]], {})
end

---@param channel integer
---@param text string
local function wait_line(channel, text)
  h.wait_for('the second editor to show ' .. vim.inspect(text), function()
    for _, line in ipairs(lines_of(channel)) do
      if line:find(text, 1, true) then
        return true
      end
    end
  end, function()
    return 'second editor:\n  ' .. table.concat(lines_of(channel), '\n  ')
  end)
end

test('a second editor follows the turn this one runs, and answers its approval', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  -- This editor started the daemon, detached, and reaches it through its
  -- socket, as the second one does.
  local info = require('exo.client').info()
  h.eq(info.transport.kind, 'socket')
  h.eq(#info.started, 1)
  h.eq(info.daemon.pid, info.started[1])
  local channel = second_editor(fx)
  wait_line(channel, 'created Work (work)')
  h.eq(vim.rpcrequest(channel, 'nvim_exec_lua', 'return require("exo.client").info().transport.kind', {}), 'socket')
  vim.cmd('Exo send please write approved.txt')
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl) .. '\nsecond editor:\n  ' .. table.concat(lines_of(channel), '\n  ')
  end)
  wait_line(channel, 'turn ended: completed')
  wait_line(channel, 'user: please write approved.txt')
  wait_line(channel, 'assistant: Wrote approved.txt.')
  h.wait_line(tl, 'turn ended: completed')
  h.ok(h.find_line(tl, 'approval write_file call_1_1: allowed (allow_once, by user)'), h.dump(tl))
  h.eq(#h.selects, 0, 'this editor only announced the question')
  local asked = vim.rpcrequest(channel, 'nvim_exec_lua', 'return _G.asked', {})
  h.eq(#asked, 1)
  h.ok(asked[1]:find('coder/work: the agent wants to write_file approved.txt', 1, true), asked[1])
end)

test('quitting the editor that started the daemon does not end the turn another editor runs', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  local daemon = require('exo.client').info().daemon.pid
  local channel = second_editor(fx)
  wait_line(channel, 'created Work (work)')
  -- The second editor's picker is held back until this editor is gone.
  vim.rpcrequest(channel, 'nvim_exec_lua', [[
    _G.held = {}
    local allow = vim.ui.select
    vim.ui.select = function(items, opts, on_choice)
      table.insert(_G.held, function() allow(items, opts, on_choice) end)
    end
    vim.cmd('Exo send please write approved.txt')
  ]], {})
  h.wait_line(tl, 'waiting for approval: write_file approved.txt')
  -- This editor quits (what VimLeavePre does).
  require('exo').shutdown()
  h.eq(vim.uv.kill(daemon, 0), 0, 'the daemon runs on')
  h.wait_for('the second editor to be asked', function()
    return vim.rpcrequest(channel, 'nvim_exec_lua', 'return #_G.held', {}) > 0
  end)
  vim.rpcrequest(channel, 'nvim_exec_lua', '_G.held[1]()', {})
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return 'second editor:\n  ' .. table.concat(lines_of(channel), '\n  ')
  end)
  wait_line(channel, 'turn ended: completed')
  h.eq(vim.rpcrequest(channel, 'nvim_exec_lua', 'return require("exo.client").status()', {}), 'connected')
end)

test("with daemon = 'stdio' the started daemon is this editor's child, and stops with it", function()
  local fx = h.fixture({ script = scripts.two_writes })
  require('exo').setup({ cmd = h.exo_bin, root = fx.root, daemon = 'stdio' })
  h.open_timeline()
  local info = require('exo.client').info()
  h.eq(info.transport.kind, 'stdio')
  h.eq(#info.started, 0)
  local pid = info.transport.pid
  require('exo').shutdown()
  h.wait_for('the stdio daemon to exit', function()
    return vim.uv.kill(pid, 0) ~= 0
  end)
end)
