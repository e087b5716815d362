--- *exo.health* `:checkhealth exo`: Neovim, the `exo` program, the root,
--- and whether the daemon answers.
---
--- The only place the plugin waits: a health check is a report the user
--- asked for, and each wait is bounded (`vim.wait`, a few seconds).

local M = {}

local health = vim.health

function M.check()
  local config = require('exo.config')
  local client = require('exo.client')

  health.start('exo: Neovim')
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim ' .. tostring(vim.version()) .. ' is too old', { 'exo.nvim needs Neovim 0.10 or later' })
  end

  local review = require('exo.review')
  local how = config.options.long_prompts
  if review.builtin_select() then
    health.ok("vim.ui.select is Neovim's own: it prints a long question (a command, the files a rewind changes) whole")
  else
    local info = debug.getinfo(vim.ui.select, 'S')
    local source = ('%s:%d'):format(info.source or '?', info.linedefined or 0)
    local effect = how == 'picker' and 'asked in it all the same (long_prompts = "picker")'
      or 'shown whole in a buffer that lists its answers (long_prompts = "' .. how .. '")'
    health.info(('vim.ui.select is replaced (%s): a long question is %s'):format((source:gsub('^@', '')), effect))
  end

  health.start('exo: the exo program')
  local cmd = config.command()
  local program = vim.fn.exepath(cmd[1])
  if program == '' then
    health.error(('%s not found'):format(cmd[1]), {
      'Install exo (cargo install --path crates/cli), or point the plugin at it:',
      'require("exo").setup({ cmd = "/path/to/exo" })',
    })
    return
  end
  local version = vim.system(vim.list_extend(vim.deepcopy(cmd), { '--version' }), { text = true }):wait(10000)
  if version.code == 0 then
    health.ok(('exo found: %s (%s)'):format(vim.trim(version.stdout or ''), program))
  else
    health.error(('%s --version failed: %s'):format(program, vim.trim(version.stderr or '')))
    return
  end

  health.start('exo: the root and its daemon')
  local root, why = config.root()
  if not root then
    health.warn(why or 'no root', {
      'Run Neovim inside a project with a .exo store, set EXO_ROOT, or require("exo").setup({ root = ... })',
    })
    return
  end
  health.ok('root: ' .. root)

  local answered, failure = false, nil
  client.request('ping', nil, function(err)
    if err then
      failure = err.message
    end
    answered = true
  end)
  local timeout = config.options.connect_timeout_ms + 1000
  vim.wait(timeout, function()
    return answered
  end, 20)
  if not answered then
    health.error(('the daemon did not answer within %d ms'):format(timeout), client.info().stderr)
    return
  end
  if failure then
    local advice = vim.deepcopy(client.info().stderr)
    if client.info().log_file then
      table.insert(advice, 'the log of the daemon this editor started: ' .. client.info().log_file)
    end
    health.error('daemon not reachable: ' .. failure, advice)
    return
  end
  local info = client.info()
  local daemon = info.daemon or {}
  local via = info.transport and info.transport.kind == 'socket' and ('its socket ' .. tostring(info.transport.socket))
    or 'exo daemon --stdio, started by this editor (it stops when this editor exits)'
  health.ok(('daemon reachable: pid %s, exo %s, protocol %s, via %s'):format(
    tostring(daemon.pid), tostring(daemon.version), tostring(daemon.protocol_version), via))
end

return M
