-- The test runner: `nvim --clean --headless --cmd 'set rtp^=editors/nvim'
-- -l test/runner.lua test/foo_spec.lua ...` loads each spec file, which
-- registers tests with `test(name, fn)`, runs them one by one, and prints
-- one line per test and then `N passed, N failed`; it exits 1 when a test
-- failed. `EXO_TEST_FILTER` runs only the tests whose name contains it.

local test_dir = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
package.path = test_dir .. '/?.lua;' .. package.path

local helpers = require('helpers')

local tests = {}

---@param name string
---@param fn fun()
function _G.test(name, fn)
  table.insert(tests, { name = name, fn = fn })
end

for _, file in ipairs(arg) do
  local chunk, err = loadfile(file)
  if not chunk then
    io.stdout:write('not ok - cannot load ' .. file .. ': ' .. tostring(err) .. '\n')
    io.stdout:write('0 passed, 1 failed\n')
    os.exit(1)
  end
  chunk()
end

local filter = vim.env.EXO_TEST_FILTER
local passed, failed = 0, 0
for _, t in ipairs(tests) do
  if not filter or t.name:find(filter, 1, true) then
    local started = vim.uv.hrtime()
    helpers.reset()
    local ok, err = xpcall(t.fn, debug.traceback)
    local cleanup_ok, cleanup_err = xpcall(helpers.cleanup, debug.traceback)
    local ms = math.floor((vim.uv.hrtime() - started) / 1e6)
    if ok and cleanup_ok then
      passed = passed + 1
      io.stdout:write(('ok - %s (%d ms)\n'):format(t.name, ms))
    else
      failed = failed + 1
      io.stdout:write(('not ok - %s (%d ms)\n'):format(t.name, ms))
      for line in tostring(ok and cleanup_err or err):gmatch('[^\n]+') do
        io.stdout:write('    ' .. line .. '\n')
      end
      for _, message in ipairs(helpers.notifications) do
        io.stdout:write('    notified: ' .. message.msg:gsub('\n', '\n      ') .. '\n')
      end
    end
    io.stdout:flush()
  end
end

io.stdout:write(('%d passed, %d failed\n'):format(passed, failed))
io.stdout:flush()
os.exit(failed > 0 and 1 or 0)
