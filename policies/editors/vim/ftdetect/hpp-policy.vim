" hpprouter policy files: *.policy
autocmd BufRead,BufNewFile *.policy setfiletype hpp-policy
