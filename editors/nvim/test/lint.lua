-- Lint: every Lua file of the plugin loads (syntax), every module opens
-- with a `---` header saying what it is for, and the help file's tags are
-- well formed and unique (`:helptags` fails otherwise).
-- `nvim --clean --headless -l test/lint.lua PLUGIN_DIR`

local plugin = assert(arg[1], 'usage: nvim -l test/lint.lua PLUGIN_DIR')
local problems = {}

local files = vim.fs.find(function(name)
  return name:match('%.lua$') ~= nil
end, { path = plugin, type = 'file', limit = math.huge })
for _, file in ipairs(files) do
  local chunk, err = loadfile(file)
  if not chunk then
    table.insert(problems, err)
  end
  if file:find('/lua/exo/', 1, true) then
    local first = io.lines(file)()
    if not first or not first:match('^%-%-%- %*exo[%w.]*%* ') then
      table.insert(problems, file .. ': does not open with a `--- *exo.name* what it is for` header')
    end
  end
end

local scratch = vim.fn.tempname()
vim.fn.mkdir(scratch, 'p')
vim.fn.writefile(vim.fn.readfile(plugin .. '/doc/exo.txt'), scratch .. '/exo.txt')
local ok, err = pcall(vim.cmd, 'helptags ' .. vim.fn.fnameescape(scratch))
if not ok then
  table.insert(problems, 'doc/exo.txt: ' .. tostring(err))
end
vim.fn.delete(scratch, 'rf')

for _, problem in ipairs(problems) do
  io.stdout:write(problem .. '\n')
end
io.stdout:write(('lint: %d files, %d problems\n'):format(#files, #problems))
os.exit(#problems == 0 and 0 or 1)
