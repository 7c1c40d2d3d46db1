package web

// page holds one language's texts of the survey pages.
type page struct {
	Lang, Title, Question, Low, High, Choose, ReasonsQ, CommentL, CommentHint, Consent, Send, Thanks, ThanksMore string
	Already, YourScore                                                                                           string
	Reasons                                                                                                      map[string]string
	Errors                                                                                                       map[string]string
	UnsubQ, UnsubB, UnsubDone, Back                                                                              string
}

var pages = map[string]page{
	"en": {
		Lang: "en", Title: "Your opinion", Question: "How likely are you to recommend %s to your family and friends?",
		Low: "0 = not at all likely", High: "10 = extremely likely", Choose: "Choose a number from 0 to 10",
		ReasonsQ: "What should we do better? Choose all that apply.", CommentL: "Anything else you want to tell us?",
		CommentHint: "Up to 1000 characters.", Consent: "You may contact me about my answer.", Send: "Send",
		Thanks: "Thank you!", ThanksMore: "Your answer is recorded. Every answer is read by a person.",
		Already: "This answer is already recorded.", YourScore: "Your answer: %d of 10",
		Reasons: map[string]string{"information": "The information I received", "materials": "The materials provided",
			"speed": "Speed", "process": "Efficiency of the process", "other": "Something else"},
		Errors: map[string]string{
			"tampered": "This link is not valid. Please use the link from your invitation exactly as it came.",
			"expired":  "This link has expired. Thank you for wanting to answer.",
			"replayed": "An answer from this code or device is already recorded. Thank you!",
			"score":    "Please choose a number from 0 to 10.",
			"comment":  "The comment is too long or contains characters we cannot take. Please shorten it.",
			"markup":   "The comment contains code or markup, which we do not accept. Please write plain text.",
			"reasons":  "Please choose from the listed reasons.",
			"flood":    "Too many requests from your address. Please wait a minute and try again.",
			"notfound": "We cannot find this survey.",
			"internal": "Something went wrong on our side. Please try again later.",
		},
		UnsubQ: "Do you want to receive no more surveys from us?", UnsubB: "Yes, never ask me again",
		UnsubDone: "Done. You will receive no more surveys.", Back: "Back",
	},
	"bg": {
		Lang: "bg", Title: "Вашето мнение", Question: "Колко вероятно е да препоръчате %s на свои близки и приятели?",
		Low: "0 = никак не е вероятно", High: "10 = изключително вероятно", Choose: "Изберете число от 0 до 10",
		ReasonsQ: "Какво да направим по-добре? Изберете всичко, което важи.", CommentL: "Искате ли да ни кажете още нещо?",
		CommentHint: "До 1000 знака.", Consent: "Можете да се свържете с мен за отговора ми.", Send: "Изпрати",
		Thanks: "Благодарим ви!", ThanksMore: "Отговорът ви е записан. Всеки отговор се чете от човек.",
		Already: "Този отговор вече е записан.", YourScore: "Вашата оценка: %d от 10",
		Reasons: map[string]string{"information": "Получената информация", "materials": "Предоставените материали",
			"speed": "Бързината", "process": "Ефективността на процеса", "other": "Друго"},
		Errors: map[string]string{
			"tampered": "Тази връзка не е валидна. Използвайте връзката от поканата точно както е дошла.",
			"expired":  "Срокът на тази връзка е изтекъл. Благодарим ви, че искахте да отговорите.",
			"replayed": "Отговор от този код или устройство вече е записан. Благодарим ви!",
			"score":    "Моля, изберете число от 0 до 10.",
			"comment":  "Коментарът е твърде дълъг или съдържа знаци, които не приемаме. Моля, съкратете го.",
			"markup":   "Коментарът съдържа код или маркировка, които не приемаме. Моля, пишете обикновен текст.",
			"reasons":  "Моля, изберете от изброените причини.",
			"flood":    "Твърде много заявки от вашия адрес. Моля, изчакайте минута и опитайте отново.",
			"notfound": "Не намираме тази анкета.",
			"internal": "Нещо се обърка при нас. Моля, опитайте по-късно.",
		},
		UnsubQ: "Не искате ли да получавате повече анкети от нас?", UnsubB: "Да, не ме питайте повече",
		UnsubDone: "Готово. Няма да получавате повече анкети.", Back: "Назад",
	},
	"ru": {
		Lang: "ru", Title: "Ваше мнение", Question: "Насколько вероятно, что вы порекомендуете %s своим близким и друзьям?",
		Low: "0 = совсем маловероятно", High: "10 = очень вероятно", Choose: "Выберите число от 0 до 10",
		ReasonsQ: "Что нам сделать лучше? Выберите всё, что подходит.", CommentL: "Хотите рассказать нам что-то ещё?",
		CommentHint: "До 1000 знаков.", Consent: "Со мной можно связаться по поводу ответа.", Send: "Отправить",
		Thanks: "Спасибо!", ThanksMore: "Ваш ответ записан. Каждый ответ читает человек.",
		Already: "Этот ответ уже записан.", YourScore: "Ваша оценка: %d из 10",
		Reasons: map[string]string{"information": "Полученная информация", "materials": "Предоставленные материалы",
			"speed": "Скорость", "process": "Эффективность процесса", "other": "Другое"},
		Errors: map[string]string{
			"tampered": "Эта ссылка недействительна. Используйте ссылку из приглашения в точности.",
			"expired":  "Срок действия ссылки истёк. Спасибо, что хотели ответить.",
			"replayed": "Ответ с этого кода или устройства уже записан. Спасибо!",
			"score":    "Пожалуйста, выберите число от 0 до 10.",
			"comment":  "Комментарий слишком длинный или содержит недопустимые знаки. Пожалуйста, сократите его.",
			"markup":   "Комментарий содержит код или разметку, которые мы не принимаем. Пишите простым текстом.",
			"reasons":  "Пожалуйста, выберите из перечисленных причин.",
			"flood":    "Слишком много запросов с вашего адреса. Подождите минуту и попробуйте снова.",
			"notfound": "Мы не можем найти этот опрос.",
			"internal": "У нас что-то пошло не так. Пожалуйста, попробуйте позже.",
		},
		UnsubQ: "Больше не получать от нас опросы?", UnsubB: "Да, больше не спрашивать",
		UnsubDone: "Готово. Вы больше не будете получать опросы.", Back: "Назад",
	},
}

func pageFor(lang string) page {
	if p, ok := pages[lang]; ok {
		return p
	}
	return pages["bg"]
}
