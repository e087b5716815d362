-- The connection itself, against a peer of the test's own on a Unix
-- socket: large messages arrive whole, an endless one closes the
-- connection instead of filling memory, and a line that is not JSON is
-- reported in one line.

local h = require('helpers')
local rpc = require('exo.rpc')

--- A socket whose peer writes `payload` to the first client, then keeps
--- the connection open; returns a connected `exo.rpc.Connection` and what
--- it saw.
---@param payload string
---@return exo.rpc.Connection, { notifications: table[], closed: string? }
local function peer_sending(payload)
  local path = vim.fn.tempname() .. '.sock'
  local server = assert(vim.uv.new_pipe(false))
  assert(server:bind(path))
  local accepted = {}
  server:listen(1, function()
    local client = assert(vim.uv.new_pipe(false))
    server:accept(client)
    table.insert(accepted, client)
    client:write(payload)
  end)
  h.on_cleanup(function()
    for _, pipe in ipairs(accepted) do
      if not pipe:is_closing() then
        pipe:close()
      end
    end
    server:close()
    os.remove(path)
  end)
  local seen = { notifications = {} }
  local pipe = assert(vim.uv.new_pipe(false))
  local connected
  pipe:connect(path, function(err)
    connected = err or true
  end)
  h.wait_for('the connection', function()
    return connected
  end)
  local conn = rpc.connect({
    reader = pipe,
    writer = pipe,
    on_notification = function(method, params)
      table.insert(seen.notifications, { method = method, params = params })
    end,
    on_close = function(reason)
      seen.closed = reason
    end,
  })
  h.on_cleanup(function()
    conn:close('test over')
  end)
  return conn, seen
end

test('a large message arrives whole', function()
  local text = string.rep('x', 8 * 1024 * 1024)
  local _, seen = peer_sending(vim.json.encode({ jsonrpc = '2.0', method = 'big', params = { text = text } }) .. '\n')
  h.wait_for('the message', function()
    return #seen.notifications > 0
  end)
  h.eq(#seen.notifications[1].params.text, #text)
  h.eq(seen.closed, nil)
end)

test('a message longer than the bound closes the connection with a clear reason', function()
  local bound = rpc.max_frame_bytes
  rpc.max_frame_bytes = 1024 * 1024
  h.on_cleanup(function()
    rpc.max_frame_bytes = bound
  end)
  local _, seen = peer_sending(string.rep('y', 3 * 1024 * 1024))
  h.wait_for('the connection to close', function()
    return seen.closed
  end)
  h.eq(seen.closed, 'the daemon sent a message longer than 1 MiB')
  h.eq(#seen.notifications, 0)
end)

test('a line that is not JSON is reported in one line and the next message is read', function()
  local _, seen = peer_sending('{"jsonrpc": oops\n{"jsonrpc":"2.0","method":"after","params":{}}\n')
  h.wait_for('the message after it', function()
    return #seen.notifications > 0
  end)
  h.eq(seen.notifications[1].method, 'after')
  local reported = h.notified('not JSON')
  h.eq(#reported, 1)
  h.eq(reported[1].msg, 'exo: the daemon sent a message that is not JSON (16 bytes); ignored')
end)
