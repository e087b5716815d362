-- exo.nvim: the `:Exo` command. Everything else loads on first use
-- (lua/exo/*.lua); see :help exo.
if vim.g.loaded_exo then
  return
end
vim.g.loaded_exo = true

if vim.fn.has('nvim-0.10') == 0 then
  vim.api.nvim_echo({ { 'exo.nvim needs Neovim 0.10 or later', 'ErrorMsg' } }, true, {})
  return
end

vim.api.nvim_create_user_command('Exo', function(opts)
  require('exo.commands').run(opts)
end, {
  nargs = '*',
  bang = true,
  desc = 'exo: follow, drive and time-travel agent conversations',
  complete = function(arglead, cmdline)
    return require('exo.commands').complete(arglead, cmdline)
  end,
})

local group = vim.api.nvim_create_augroup('exo', { clear = true })

vim.api.nvim_create_autocmd('BufReadCmd', {
  group = group,
  pattern = 'exo://*',
  desc = 'exo: a conversation timeline opened by name',
  callback = function(event)
    require('exo').read_buffer(event.buf, event.match)
  end,
})

vim.api.nvim_create_autocmd('ColorScheme', {
  group = group,
  desc = 'exo: highlight groups',
  callback = function()
    require('exo.render').define_highlights()
  end,
})

vim.api.nvim_create_autocmd('VimLeavePre', {
  group = group,
  desc = 'exo: close the connection (a daemon started with daemon = "stdio" shuts down)',
  callback = function()
    if package.loaded['exo.client'] then
      require('exo.client').disconnect()
    end
  end,
})
