--- *exo.commands* `:Exo {subcommand}`: parsing and completion.
---
--- Each subcommand maps to a function of `require('exo')`; `:Exo!` means
--- force where that makes sense (rewind, redo).

local M = {}

local function exo()
  return require('exo')
end

---@param args string[]
---@return string
local function rest(args)
  return table.concat(args, ' ')
end

---@class exo.Subcommand
---@field run fun(args: string[], bang: boolean, raw: string) `raw`: what follows the subcommand, as typed
---@field complete? fun(arglead: string): string[]
---@field help string

---@type table<string, exo.Subcommand>
M.subcommands = {
  conversations = {
    help = 'pick the current conversation and open its timeline',
    run = function()
      exo().pick()
    end,
  },
  open = {
    help = '[AGENT/CONVERSATION]  open a timeline (the current conversation by default)',
    run = function(args)
      exo().open(args[1])
    end,
    complete = function(arglead)
      local cache = exo()._completion_cache
      if not cache then
        -- Fill it for the next <Tab>; completion itself never waits.
        exo().list_conversations(function() end)
        return {}
      end
      return vim.tbl_filter(function(item)
        return vim.startswith(item, arglead)
      end, cache)
    end,
  },
  send = {
    help = '{text}  run a turn; its output streams into the timeline',
    run = function(_, _, raw)
      -- As typed: inner spaces, tabs and backslashes are the message's own.
      exo().send({ text = raw })
    end,
  },
  cancel = {
    help = 'cancel the running turn',
    run = function()
      exo().cancel()
    end,
  },
  approvals = {
    help = 'answer the approvals the turns wait for',
    run = function()
      exo().approvals()
    end,
  },
  rewind = {
    help = '[EVENT]  rewind to the event (under the cursor; before the last turn)',
    run = function(args, bang)
      exo().rewind({ to = args[1], force = bang })
    end,
  },
  redo = {
    help = 'go back to the branch a rewind left behind',
    run = function(_, bang)
      exo().redo({ force = bang })
    end,
  },
  fork = {
    help = '[DIR]  fork at the event under the cursor (or the head), into a new folder',
    run = function(_, _, raw)
      exo().fork({ dir = raw ~= '' and raw or nil })
    end,
    complete = function(arglead)
      return vim.fn.getcompletion(arglead, 'dir')
    end,
  },
  diff = {
    help = '[disk] [TURN] [PATH]  what a turn changed, in diff mode',
    run = function(args)
      local opts = {}
      for _, arg in ipairs(args) do
        if arg == 'disk' then
          opts.disk = true
        elseif arg:match('^%x%x%x%x%x%x%x%x%-%x%x%x%x%-') then
          opts.turn = arg
        else
          opts.path = arg
        end
      end
      exo().diff(opts)
    end,
    complete = function(arglead)
      return vim.tbl_filter(function(item)
        return vim.startswith(item, arglead)
      end, { 'disk' })
    end,
  },
  snapshot = {
    help = 'snapshot the workspace now',
    run = function()
      exo().snapshot()
    end,
  },
  status = {
    help = 'how this editor reaches exo',
    run = function()
      exo().status()
    end,
  },
}

---@return string[]
function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

--- `:Exo` itself.
---@param opts { fargs: string[], bang: boolean }
function M.run(opts)
  local name = opts.fargs[1]
  if not name then
    local lines = { 'usage: :Exo[!] {subcommand}' }
    for _, each in ipairs(M.names()) do
      table.insert(lines, ('  %-14s %s'):format(each, M.subcommands[each].help))
    end
    return vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
  end
  local subcommand = M.subcommands[name]
  if not subcommand then
    return vim.notify('exo: no subcommand ' .. name .. ' (:Exo lists them)', vim.log.levels.ERROR)
  end
  -- What follows the subcommand, as typed but for the blanks around it.
  local raw = (opts.args or ''):gsub('^%s*%S+%s*', '', 1):gsub('%s+$', '')
  subcommand.run(vim.list_slice(opts.fargs, 2), opts.bang, raw)
end

--- Completion of `:Exo`.
---@param arglead string
---@param cmdline string
---@return string[]
function M.complete(arglead, cmdline)
  local words = vim.split(cmdline:gsub('^%s*%S+!?%s*', ''), '%s+', { trimempty = false })
  if #words <= 1 then
    return vim.tbl_filter(function(name)
      return vim.startswith(name, arglead)
    end, M.names())
  end
  local subcommand = M.subcommands[words[1]]
  if subcommand and subcommand.complete then
    return subcommand.complete(arglead)
  end
  return {}
end

return M
