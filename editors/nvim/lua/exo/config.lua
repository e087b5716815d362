--- *exo.config* The plugin's options, their defaults, and root discovery.

local M = {}

---@class exo.Config
---@field cmd string|string[] The `exo` program (and leading arguments).
---@field root string? The exo root (a `.exo` directory, or a directory holding one); nil: `EXO_ROOT`, else the nearest `.exo` holding a store from the current directory up.
---@field env table<string, string>? Extra environment for the daemon this editor starts.
---@field daemon 'start'|'stdio' When no daemon runs: `start` one detached (it serves every client and outlives this editor), or run `exo daemon --stdio` as this editor's child (it stops when this editor exits).
---@field timeline { open: string, width: integer? } How `:Exo open` shows a timeline: an Ex command that opens a window (`vsplit`, `split`, `tabnew`, `enew`).
---@field confirm boolean Ask before a rewind, redo or fork, showing what will change.
---@field approvals 'notify'|'ask'|false The approval questions of turns this editor follows: `notify` announces each (`:Exo approvals` answers), `ask` opens the picker by itself (in Normal mode, with no keys pending), false shows them in the timeline only.
---@field long_prompts 'auto'|'picker'|'buffer' A question longer than one line or half the editor's width (an approval of a long command, a rewind's files): 'picker' asks it through `vim.ui.select` all the same, 'buffer' shows it whole in a buffer that lists its answers (Enter on one gives it), 'auto' does the first with Neovim's own picker (which prints the prompt whole) and the second with one that replaces it.
---@field max_rounds integer? Passed to `turn/run`.
---@field reconnect { initial_ms: integer, max_ms: integer } Backoff when the daemon goes away.
---@field connect_timeout_ms integer How long to wait for a started daemon to answer.
local defaults = {
  cmd = 'exo',
  root = nil,
  env = nil,
  daemon = 'start',
  timeline = { open = 'vsplit', width = nil },
  confirm = true,
  approvals = 'notify',
  long_prompts = 'auto',
  max_rounds = nil,
  reconnect = { initial_ms = 200, max_ms = 5000 },
  connect_timeout_ms = 15000,
}

---@type exo.Config
M.options = vim.deepcopy(defaults)

---@param opts table?
function M.setup(opts)
  local options = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  if options.daemon ~= 'start' and options.daemon ~= 'stdio' then
    error(('exo: setup: daemon must be "start" or "stdio", not %s'):format(vim.inspect(options.daemon)), 2)
  end
  if options.approvals == true then
    options.approvals = 'notify'
  end
  if options.approvals ~= 'notify' and options.approvals ~= 'ask' and options.approvals ~= false then
    error(('exo: setup: approvals must be "notify", "ask" or false, not %s'):format(vim.inspect(options.approvals)), 2)
  end
  if options.long_prompts ~= 'auto' and options.long_prompts ~= 'picker' and options.long_prompts ~= 'buffer' then
    error(('exo: setup: long_prompts must be "auto", "picker" or "buffer", not %s'):format(vim.inspect(options.long_prompts)), 2)
  end
  M.options = options
end

---@return string[]
function M.command()
  local cmd = M.options.cmd
  if type(cmd) == 'string' then
    return { cmd }
  end
  return vim.deepcopy(cmd)
end

-- ---------------------------------------------------------------------------
-- Finding the root
-- ---------------------------------------------------------------------------

---@param path string
---@return boolean
local function is_store(path)
  return vim.uv.fs_stat(path .. '/exo.db') ~= nil
end

--- The exo root this editor uses, as exo itself finds it: the configured
--- root, else `EXO_ROOT`, else the nearest `.exo` directory holding a store
--- from the current directory up, stopping before `EXO_CEILING_DIRECTORIES`.
---@return string? root, string? why_not
function M.root()
  local configured = M.options.root or vim.env.EXO_ROOT
  if configured and configured ~= '' then
    local path = vim.fs.normalize(vim.fn.fnamemodify(configured, ':p'))
    path = path:gsub('(.)/$', '%1')
    if is_store(path) then
      return vim.uv.fs_realpath(path) or path
    end
    if is_store(path .. '/.exo') then
      return vim.uv.fs_realpath(path .. '/.exo') or path .. '/.exo'
    end
    return nil, 'no exo store at ' .. path .. ' (looked for exo.db)'
  end
  local ceilings = {}
  for entry in vim.gsplit(vim.env.EXO_CEILING_DIRECTORIES or '', ':', { plain = true }) do
    if entry:sub(1, 1) == '/' then
      ceilings[vim.fs.normalize(entry)] = true
    end
  end
  local cwd = vim.fs.normalize(vim.uv.cwd() or '.')
  local dir = cwd
  while dir do
    local candidate = (dir == '/' and '' or dir) .. '/.exo'
    local stat = vim.uv.fs_stat(candidate)
    if stat and stat.type == 'directory' and is_store(candidate) then
      return vim.uv.fs_realpath(candidate) or candidate
    end
    local parent = vim.fs.dirname(dir)
    if parent == dir or ceilings[parent] then
      break
    end
    dir = parent
  end
  return nil, 'no exo store found in ' .. cwd .. ' or any parent (looked for .exo/exo.db); set root in require("exo").setup()'
end

return M
